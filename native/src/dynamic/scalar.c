/* Min / max of fp32 values, portable C. */
#include "dynamic/ukernel.h"

void onnxq_minmax_f32_ukernel_1__scalar(size_t n, const float* x, float* lo, float* hi) {
    float mn = *lo, mx = *hi;
    for (size_t i = 0; i < n; ++i) {
        const float v = x[i];
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
    }
    *lo = mn;
    *hi = mx;
}
