/* Gate activations, NEON (aarch64): rnn/act.h on 4 lanes (separate multiplies and adds, no FMA),
 * the tail through the scalar functions. */
#if defined(__aarch64__)
#include <arm_neon.h>

#include "rnn/act.h"
#include "rnn/ukernel.h"

static inline float32x4_t exp4(float32x4_t x) {
    x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-87.0f)), vdupq_n_f32(88.0f));
    const float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32((float)1.44269504088896341)));
    float32x4_t r = vsubq_f32(x, vmulq_f32(n, vdupq_n_f32((float)0.693145751953125)));
    r = vsubq_f32(r, vmulq_f32(n, vdupq_n_f32((float)1.42860676533018672e-06)));
    float32x4_t p = vdupq_n_f32((float)(1.0 / 720.0));
    p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32((float)(1.0 / 120.0)));
    p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32((float)(1.0 / 24.0)));
    p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32((float)(1.0 / 6.0)));
    p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32(0.5f));
    p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32(1.0f));
    p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32(1.0f));
    const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
    return vmulq_f32(p, vreinterpretq_f32_s32(e));
}

void onnxq_sigmoid_f32_ukernel_4__neon(size_t n, const float* x, float* y) {
    const float32x4_t one = vdupq_n_f32(1.0f);
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(y + i, vdivq_f32(one, vaddq_f32(one, exp4(vnegq_f32(vld1q_f32(x + i))))));
    for (; i < n; ++i) y[i] = onnxq_sigmoid_f32(x[i]);
}

void onnxq_tanh_f32_ukernel_4__neon(size_t n, const float* x, float* y) {
    const float32x4_t one = vdupq_n_f32(1.0f), m2 = vdupq_n_f32(-2.0f);
    const uint32x4_t sign = vdupq_n_u32(0x80000000u);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t v = vld1q_f32(x + i);
        const float32x4_t t = exp4(vmulq_f32(m2, vabsq_f32(v)));
        const float32x4_t q = vdivq_f32(vsubq_f32(one, t), vaddq_f32(one, t));
        vst1q_f32(y + i, vbslq_f32(sign, v, q));
    }
    for (; i < n; ++i) y[i] = onnxq_tanh_f32(x[i]);
}
#endif
