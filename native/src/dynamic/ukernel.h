/* Micro-kernel types of the dynamic family (run-time activation range). */
#ifndef ONNXQ_DYNAMIC_UKERNEL_H
#define ONNXQ_DYNAMIC_UKERNEL_H

#include <stddef.h>

/* *lo = min(*lo, x[i]), *hi = max(*hi, x[i]) over i < n; a NaN among x[0..n) sets *lo = *hi = NaN
 * (NaN in *lo / *hi on entry stays there, so the range of several calls is NaN as well). */
typedef void onnxq_minmax_f32_ukernel_fn(size_t n, const float* x, float* lo, float* hi);

#endif /* ONNXQ_DYNAMIC_UKERNEL_H */
