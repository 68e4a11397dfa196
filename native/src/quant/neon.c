/* Quantize / dequantize, NEON (aarch64): 16 values per step, the scalar steps for the tail.
 * fmaxnm returns the number when the other operand is NaN, so NaN clamps to lo like maxps. */
#if defined(__aarch64__)
#include <arm_neon.h>

#include "common/quantize_scalar.h"
#include "common/requant_neon.h"
#include "quant/ukernel.h"

static inline int32x4_t quantize4(const float* x, float32x4_t scale, float32x4_t lo,
                                  float32x4_t hi, int32x4_t zp) {
    return vaddq_s32(onnxq_clamp_round_neon(vdivq_f32(vld1q_f32(x), scale), lo, hi), zp);
}

static inline int16x8_t quantize16_lo(const float* x, float32x4_t s, float32x4_t lo,
                                      float32x4_t hi, int32x4_t zp, int16x8_t* high) {
    const int16x8_t a = vcombine_s16(vqmovn_s32(quantize4(x, s, lo, hi, zp)),
                                     vqmovn_s32(quantize4(x + 4, s, lo, hi, zp)));
    *high = vcombine_s16(vqmovn_s32(quantize4(x + 8, s, lo, hi, zp)),
                         vqmovn_s32(quantize4(x + 12, s, lo, hi, zp)));
    return a;
}

void onnxq_quantize_f32_u8_ukernel_16__neon(size_t n, const float* x, float scale, int32_t zp,
                                            uint8_t* y) {
    const float lo = (float)(0 - zp), hi = (float)(255 - zp);
    const float32x4_t vs = vdupq_n_f32(scale), vlo = vdupq_n_f32(lo), vhi = vdupq_n_f32(hi);
    const int32x4_t vzp = vdupq_n_s32(zp);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        int16x8_t b;
        const int16x8_t a = quantize16_lo(x + i, vs, vlo, vhi, vzp, &b);
        vst1q_u8(y + i, vcombine_u8(vqmovun_s16(a), vqmovun_s16(b)));
    }
    for (; i < n; ++i) y[i] = (uint8_t)onnxq_quantize_one(x[i], scale, lo, hi, zp);
}

void onnxq_quantize_f32_s8_ukernel_16__neon(size_t n, const float* x, float scale, int32_t zp,
                                            int8_t* y) {
    const float lo = (float)(-128 - zp), hi = (float)(127 - zp);
    const float32x4_t vs = vdupq_n_f32(scale), vlo = vdupq_n_f32(lo), vhi = vdupq_n_f32(hi);
    const int32x4_t vzp = vdupq_n_s32(zp);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        int16x8_t b;
        const int16x8_t a = quantize16_lo(x + i, vs, vlo, vhi, vzp, &b);
        vst1q_s8(y + i, vcombine_s8(vqmovn_s16(a), vqmovn_s16(b)));
    }
    for (; i < n; ++i) y[i] = (int8_t)onnxq_quantize_one(x[i], scale, lo, hi, zp);
}

static inline void dequantize8(int16x8_t q, int32x4_t zp, float32x4_t s, float* y) {
    const int32x4_t a = vsubq_s32(vmovl_s16(vget_low_s16(q)), zp);
    const int32x4_t b = vsubq_s32(vmovl_s16(vget_high_s16(q)), zp);
    vst1q_f32(y, vmulq_f32(vcvtq_f32_s32(a), s));
    vst1q_f32(y + 4, vmulq_f32(vcvtq_f32_s32(b), s));
}

void onnxq_dequantize_u8_f32_ukernel_16__neon(size_t n, const uint8_t* x, float scale,
                                              int32_t zp, float* y) {
    const float32x4_t vs = vdupq_n_f32(scale);
    const int32x4_t vzp = vdupq_n_s32(zp);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const uint8x16_t q = vld1q_u8(x + i);
        dequantize8(vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(q))), vzp, vs, y + i);
        dequantize8(vreinterpretq_s16_u16(vmovl_u8(vget_high_u8(q))), vzp, vs, y + i + 8);
    }
    for (; i < n; ++i) y[i] = (float)((int32_t)x[i] - zp) * scale;
}

void onnxq_dequantize_s8_f32_ukernel_16__neon(size_t n, const int8_t* x, float scale,
                                              int32_t zp, float* y) {
    const float32x4_t vs = vdupq_n_f32(scale);
    const int32x4_t vzp = vdupq_n_s32(zp);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const int8x16_t q = vld1q_s8(x + i);
        dequantize8(vmovl_s8(vget_low_s8(q)), vzp, vs, y + i);
        dequantize8(vmovl_s8(vget_high_s8(q)), vzp, vs, y + i + 8);
    }
    for (; i < n; ++i) y[i] = (float)((int32_t)x[i] - zp) * scale;
}
#endif /* __aarch64__ */
