/* The scalar min / max step of the dynamic family: the whole scalar kernel and the tail of every
 * vector kernel that has no masked loads. A NaN value makes the range NaN (*lo = *hi = NaN), which
 * the callers reject: NaN inputs are an error, never skipped. */
#ifndef ONNXQ_DYNAMIC_TAIL_H
#define ONNXQ_DYNAMIC_TAIL_H

#include <math.h>
#include <stddef.h>

/* *lo = min(*lo, x[i]), *hi = max(*hi, x[i]) over i < n, in order; NaN anywhere: both NaN. */
static inline void onnxq_minmax_f32_tail(size_t n, const float* x, float* lo, float* hi) {
    float mn = *lo, mx = *hi;
    for (size_t i = 0; i < n; ++i) {
        const float v = x[i];
        if (v != v) {
            *lo = *hi = NAN;
            return;
        }
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
    }
    *lo = mn;
    *hi = mx;
}

#endif /* ONNXQ_DYNAMIC_TAIL_H */
