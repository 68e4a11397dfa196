/* The dynamic-quantization matmul with rows quantized in groups (private: the recurrent ops
 * project all their time steps' inputs in one GEMM, each step's batch rows quantized together). */
#ifndef ONNXQ_DYNAMIC_GROUPED_H
#define ONNXQ_DYNAMIC_GROUPED_H

#include <stddef.h>

#include "onnxq/dynamic.h"

/* onnxq_dqmm on p->m rows quantized in groups of `group` consecutive rows (p->mode is not read),
 * each group's parameters those of ONNXQ_DQ_PER_TENSOR over its rows; group 1 is ONNXQ_DQ_PER_ROW.
 * Every group's outputs are the bytes onnxq_dqmm gives per tensor on its rows alone. The caller
 * has checked p (onnxq_dqmm does; the recurrent drivers size their own scratch); m not a
 * multiple of group is ONNXQ_E_SHAPE. */
int onnxq_dqmm_grouped(const void* packed_w, size_t packed_size, const onnxq_dqmm_params* p,
                       size_t group);

#endif /* ONNXQ_DYNAMIC_GROUPED_H */
