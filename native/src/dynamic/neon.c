/* Min / max of fp32 values, NEON (aarch64): 8 per step, scalar tail; a NaN makes the range NaN. */
#if defined(__aarch64__)
#include <arm_neon.h>
#include <math.h>

#include "dynamic/dynamic_tail.h"
#include "dynamic/ukernel.h"

void onnxq_minmax_f32_ukernel_8__neon(size_t n, const float* x, float* lo, float* hi) {
    /* fminnm / fmaxnm return the number when one operand is NaN: NaN inputs (a != a) are
     * counted in `nan` instead, and make the whole range NaN (as does a NaN *lo / *hi) */
    if (*lo != *lo || *hi != *hi) {
        *lo = *hi = NAN;
        return;
    }
    float32x4_t mn0 = vdupq_n_f32(*lo), mn1 = mn0, mx0 = vdupq_n_f32(*hi), mx1 = mx0;
    uint32x4_t nan = vdupq_n_u32(0);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float32x4_t a = vld1q_f32(x + i), b = vld1q_f32(x + i + 4);
        nan = vornq_u32(nan, vandq_u32(vceqq_f32(a, a), vceqq_f32(b, b)));
        mn0 = vminnmq_f32(mn0, a);
        mn1 = vminnmq_f32(mn1, b);
        mx0 = vmaxnmq_f32(mx0, a);
        mx1 = vmaxnmq_f32(mx1, b);
    }
    if (vmaxvq_u32(nan) != 0) {
        *lo = *hi = NAN;
        return;
    }
    *lo = vminnmvq_f32(vminnmq_f32(mn0, mn1));
    *hi = vmaxnmvq_f32(vmaxnmq_f32(mx0, mx1));
    onnxq_minmax_f32_tail(n - i, x + i, lo, hi);
}
#endif
