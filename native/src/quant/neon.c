/* Quantize / dequantize, NEON (aarch64): 16 values per step, the scalar steps for the tail.
 * fmaxnm returns the number when the other operand is NaN, so NaN clamps to lo like maxps. */
#if defined(__aarch64__)
#include <arm_neon.h>

#include "common/requant_neon.h"
#include "quant/quant_tail.h"
#include "quant/ukernel.h"

static inline int32x4_t quantize4(const float* x, float32x4_t scale, float32x4_t lo,
                                  float32x4_t hi, int32x4_t zp) {
    return vaddq_s32(onnxq_clamp_round_neon(vdivq_f32(vld1q_f32(x), scale), lo, hi), zp);
}

/* 8 int16 -> 8 bytes, saturated to int8 (is_signed) or uint8, as bytes. */
static inline uint8x8_t narrow8(int16x8_t v, int is_signed) {
    return is_signed ? vreinterpret_u8_s8(vqmovn_s16(v)) : vqmovun_s16(v);
}

/* n floats -> n bytes, 16 per step: int8 (is_signed) or uint8; lo/hi are qmin - zp, qmax - zp.
 * The scalar steps for the tail, stored as the same bytes. */
static inline void quantize_bytes(size_t n, const float* x, float scale, int32_t zp, float lo,
                                  float hi, int is_signed, uint8_t* y) {
    const float32x4_t vs = vdupq_n_f32(scale), vlo = vdupq_n_f32(lo), vhi = vdupq_n_f32(hi);
    const int32x4_t vzp = vdupq_n_s32(zp);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const float* p = x + i;
        const int16x8_t a = vcombine_s16(vqmovn_s32(quantize4(p, vs, vlo, vhi, vzp)),
                                         vqmovn_s32(quantize4(p + 4, vs, vlo, vhi, vzp)));
        const int16x8_t b = vcombine_s16(vqmovn_s32(quantize4(p + 8, vs, vlo, vhi, vzp)),
                                         vqmovn_s32(quantize4(p + 12, vs, vlo, vhi, vzp)));
        vst1q_u8(y + i, vcombine_u8(narrow8(a, is_signed), narrow8(b, is_signed)));
    }
    onnxq_quantize_tail(i, n, x, scale, zp, lo, hi, y);
}

void onnxq_quantize_f32_u8_ukernel_16__neon(size_t n, const float* x, float scale, int32_t zp,
                                            uint8_t* y) {
    quantize_bytes(n, x, scale, zp, (float)(0 - zp), (float)(255 - zp), 0, y);
}

void onnxq_quantize_f32_s8_ukernel_16__neon(size_t n, const float* x, float scale, int32_t zp,
                                            int8_t* y) {
    quantize_bytes(n, x, scale, zp, (float)(-128 - zp), (float)(127 - zp), 1, (uint8_t*)y);
}

static inline void dequantize8(int16x8_t q, int32x4_t zp, float32x4_t s, float* y) {
    const int32x4_t a = vsubq_s32(vmovl_s16(vget_low_s16(q)), zp);
    const int32x4_t b = vsubq_s32(vmovl_s16(vget_high_s16(q)), zp);
    vst1q_f32(y, vmulq_f32(vcvtq_f32_s32(a), s));
    vst1q_f32(y + 4, vmulq_f32(vcvtq_f32_s32(b), s));
}

/* 8 bytes (int8 when is_signed, else uint8) -> 8 int16. */
static inline int16x8_t widen8(uint8x8_t v, int is_signed) {
    return is_signed ? vmovl_s8(vreinterpret_s8_u8(v)) : vreinterpretq_s16_u16(vmovl_u8(v));
}

/* n bytes (int8 when is_signed, else uint8) -> n floats, 16 per step, scalar tail. */
static inline void dequantize_bytes(size_t n, const uint8_t* x, float scale, int32_t zp,
                                    int is_signed, float* y) {
    const float32x4_t vs = vdupq_n_f32(scale);
    const int32x4_t vzp = vdupq_n_s32(zp);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const uint8x16_t q = vld1q_u8(x + i);
        dequantize8(widen8(vget_low_u8(q), is_signed), vzp, vs, y + i);
        dequantize8(widen8(vget_high_u8(q), is_signed), vzp, vs, y + i + 8);
    }
    onnxq_dequantize_tail(i, n, x, scale, zp, is_signed, y);
}

void onnxq_dequantize_u8_f32_ukernel_16__neon(size_t n, const uint8_t* x, float scale,
                                              int32_t zp, float* y) {
    dequantize_bytes(n, x, scale, zp, 0, y);
}

void onnxq_dequantize_s8_f32_ukernel_16__neon(size_t n, const int8_t* x, float scale,
                                              int32_t zp, float* y) {
    dequantize_bytes(n, (const uint8_t*)x, scale, zp, 1, y);
}
#endif /* __aarch64__ */
