/* Min / max of fp32 values, portable C. */
#include "dynamic/dynamic_tail.h"
#include "dynamic/ukernel.h"

void onnxq_minmax_f32_ukernel_1__scalar(size_t n, const float* x, float* lo, float* hi) {
    onnxq_minmax_f32_tail(n, x, lo, hi);
}
