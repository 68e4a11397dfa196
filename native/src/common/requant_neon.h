/* NEON (aarch64) requantisation steps shared by all families. Bit-exact with onnxq_clamp_round /
 * onnxq_requant_one: fmaxnm(v, lo) gives lo for NaN, fcvtns rounds half to even. */
#ifndef ONNXQ_REQUANT_NEON_H
#define ONNXQ_REQUANT_NEON_H

#include <arm_neon.h>

/* round_half_even(clamp(v, lo, hi)) as int32 (lo, hi integral). */
static inline int32x4_t onnxq_clamp_round_neon(float32x4_t v, float32x4_t lo, float32x4_t hi) {
    return vcvtnq_s32_f32(vminnmq_f32(vmaxnmq_f32(v, lo), hi));
}

/* MLAS requantisation of 4 int32: clamp_round((float)acc * scale, lo, hi) + zp. */
static inline int32x4_t onnxq_requant_neon(int32x4_t acc, float32x4_t scale, float32x4_t lo,
                                           float32x4_t hi, int32x4_t zp) {
    const float32x4_t v = vmulq_f32(vcvtq_f32_s32(acc), scale);
    return vaddq_s32(onnxq_clamp_round_neon(v, lo, hi), zp);
}

#endif /* ONNXQ_REQUANT_NEON_H */
