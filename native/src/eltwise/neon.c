/* Quantized add, NEON (aarch64): 16 values per step with vfmaq_f32 (fused, like the other ISAs)
 * and vcvtnq_s32_f32 (round half to even); the scalar step (fmaf) for the tail. */
#if defined(__aarch64__)
#include <arm_neon.h>

#include "eltwise/eltwise_tail.h"
#include "eltwise/ukernel.h"

static inline int32x4_t step4(int32x4_t a, const int32x4_t* b, float32x4_t ra, float32x4_t rb,
                              float32x4_t fixed, float32x4_t lo, float32x4_t hi) {
    float32x4_t t = b != NULL ? vfmaq_f32(fixed, vcvtq_f32_s32(*b), rb) : fixed;
    float32x4_t v = vfmaq_f32(t, vcvtq_f32_s32(a), ra);
    v = vminq_f32(vmaxq_f32(v, lo), hi);
    return vcvtnq_s32_f32(v);
}

static inline void widen16(const uint8_t* p, int is_signed, int32x4_t out[4]) {
    if (is_signed) {
        int8x16_t v = vld1q_s8((const int8_t*)p);
        int16x8_t l = vmovl_s8(vget_low_s8(v)), h = vmovl_s8(vget_high_s8(v));
        out[0] = vmovl_s16(vget_low_s16(l));
        out[1] = vmovl_s16(vget_high_s16(l));
        out[2] = vmovl_s16(vget_low_s16(h));
        out[3] = vmovl_s16(vget_high_s16(h));
    } else {
        uint8x16_t v = vld1q_u8(p);
        uint16x8_t l = vmovl_u8(vget_low_u8(v)), h = vmovl_u8(vget_high_u8(v));
        out[0] = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(l)));
        out[1] = vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(l)));
        out[2] = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(h)));
        out[3] = vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(h)));
    }
}

static void qadd_neon(size_t n, const uint8_t* pa, const uint8_t* pb, uint8_t* py,
                      const onnxq_qadd_ukernel_params* p, int is_signed) {
    const float32x4_t ra = vdupq_n_f32(p->ra), rb = vdupq_n_f32(p->rb);
    const float32x4_t fixed = vdupq_n_f32(p->fixed), lo = vdupq_n_f32(p->lo);
    const float32x4_t hi = vdupq_n_f32(p->hi);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const uint8_t* xa = pa + i;
        const uint8_t* xb = pb != NULL ? pb + i : NULL;
        uint8_t* out = py + i;
        int32x4_t va[4], vb[4], r[4];
        widen16(xa, is_signed, va);
        if (xb != NULL) widen16(xb, is_signed, vb);
        for (int j = 0; j < 4; ++j) r[j] = step4(va[j], xb != NULL ? &vb[j] : NULL, ra, rb, fixed, lo, hi);
        int16x8_t w0 = vcombine_s16(vqmovn_s32(r[0]), vqmovn_s32(r[1]));
        int16x8_t w1 = vcombine_s16(vqmovn_s32(r[2]), vqmovn_s32(r[3]));
        if (is_signed)
            vst1q_s8((int8_t*)out, vcombine_s8(vqmovn_s16(w0), vqmovn_s16(w1)));
        else
            vst1q_u8(out, vcombine_u8(vqmovun_s16(w0), vqmovun_s16(w1)));
    }
    onnxq_qadd_tail(i, n, pa, pb, py, p, is_signed);
}

void onnxq_qadd_u8_ukernel_16__neon(size_t n, const uint8_t* a, const uint8_t* b, uint8_t* y,
                                    const onnxq_qadd_ukernel_params* p) {
    qadd_neon(n, a, b, y, p, 0);
}

void onnxq_qadd_s8_ukernel_16__neon(size_t n, const int8_t* a, const int8_t* b, int8_t* y,
                                    const onnxq_qadd_ukernel_params* p) {
    qadd_neon(n, (const uint8_t*)a, (const uint8_t*)b, (uint8_t*)y, p, 1);
}
#endif
