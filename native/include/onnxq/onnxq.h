/* onnxq native int8 kernels: the one header to include (C and C++).
 *
 * The headers listed here form the public C API; tools parse them (minus preprocessor lines) as
 * the cffi declarations, so they hold only enums, structs, typedefs and prototypes in plain C.
 */
#ifndef ONNXQ_H
#define ONNXQ_H

#ifdef __cplusplus
extern "C" {
#endif

#include "onnxq/status.h"
#include "onnxq/types.h"
#include "onnxq/isa.h"
#include "onnxq/quant.h"
#include "onnxq/gemm.h"
#include "onnxq/concat.h"
#include "onnxq/conv.h"
#include "onnxq/dynamic.h"
#include "onnxq/blockwise.h"
#include "onnxq/eltwise.h"
#include "onnxq/pool.h"
#include "onnxq/rnn.h"
#include "onnxq/hist.h"

#ifdef __cplusplus
}
#endif

#endif /* ONNXQ_H */
