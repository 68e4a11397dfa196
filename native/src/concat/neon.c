/* Requantisation for concat, NEON (aarch64): the table's fp32 arithmetic (multiply, divide, clamp,
 * round half to even) on 4-lane groups, 16 values per step, the table lookup for the tail. */
#if defined(__aarch64__)
#include <arm_neon.h>

#include "concat/concat_tail.h"
#include "concat/ukernel.h"

static inline int32x4_t requant4(int32x4_t v, int32x4_t xzp, float32x4_t xs, float32x4_t ys,
                                 float32x4_t lo, float32x4_t hi, int32x4_t yzp) {
    float32x4_t f = vmulq_f32(xs, vcvtq_f32_s32(vsubq_s32(v, xzp)));
    f = vminq_f32(vmaxq_f32(vdivq_f32(f, ys), lo), hi);
    return vaddq_s32(vcvtnq_s32_f32(f), yzp);
}

static void requant_neon(size_t n, const uint8_t* x, uint8_t* y,
                         const onnxq_requant_ukernel_params* p, int is_signed) {
    const float32x4_t xs = vdupq_n_f32(p->x_scale), ys = vdupq_n_f32(p->y_scale);
    const float32x4_t lo = vdupq_n_f32(p->lo), hi = vdupq_n_f32(p->hi);
    const int32x4_t xzp = vdupq_n_s32(p->x_zp), yzp = vdupq_n_s32(p->y_zp);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const uint8_t* src = x + i;
        uint8_t* dst = y + i;
        int32x4_t v[4];
        if (is_signed) {
            int8x16_t b = vld1q_s8((const int8_t*)src);
            int16x8_t l = vmovl_s8(vget_low_s8(b)), h = vmovl_s8(vget_high_s8(b));
            v[0] = vmovl_s16(vget_low_s16(l)), v[1] = vmovl_s16(vget_high_s16(l));
            v[2] = vmovl_s16(vget_low_s16(h)), v[3] = vmovl_s16(vget_high_s16(h));
        } else {
            uint8x16_t b = vld1q_u8(src);
            uint16x8_t l = vmovl_u8(vget_low_u8(b)), h = vmovl_u8(vget_high_u8(b));
            v[0] = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(l)));
            v[1] = vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(l)));
            v[2] = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(h)));
            v[3] = vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(h)));
        }
        for (int j = 0; j < 4; ++j) v[j] = requant4(v[j], xzp, xs, ys, lo, hi, yzp);
        int16x8_t w0 = vcombine_s16(vqmovn_s32(v[0]), vqmovn_s32(v[1]));
        int16x8_t w1 = vcombine_s16(vqmovn_s32(v[2]), vqmovn_s32(v[3]));
        if (is_signed)
            vst1q_s8((int8_t*)dst, vcombine_s8(vqmovn_s16(w0), vqmovn_s16(w1)));
        else
            vst1q_u8(dst, vcombine_u8(vqmovun_s16(w0), vqmovun_s16(w1)));
    }
    onnxq_requant_tail(i, n, x, y, p);
}

void onnxq_requant_u8_ukernel_16__neon(size_t n, const uint8_t* x, uint8_t* y,
                                       const onnxq_requant_ukernel_params* p) {
    requant_neon(n, x, y, p, 0);
}

void onnxq_requant_s8_ukernel_16__neon(size_t n, const int8_t* x, int8_t* y,
                                       const onnxq_requant_ukernel_params* p) {
    requant_neon(n, (const uint8_t*)x, (uint8_t*)y, p, 1);
}
#endif
