/* Pooling micro-kernels, NEON (aarch64): 16 channels per step for max, 4-lane fp32 groups for avg
 * (separate multiply and add, like the scalar kernel) and int32 sums for global avg; tails through
 * stack buffers. */
#if defined(__aarch64__)
#include <arm_neon.h>
#include <string.h>

#include "pool/pool_tail.h"
#include "pool/ukernel.h"

static void max_neon(size_t channels, size_t ntaps, const uint8_t* const* taps, uint8_t* y,
                     int is_signed) {
    size_t c = 0;
    for (; c + 16 <= channels; c += 16) {
        if (is_signed) {
            int8x16_t m = vld1q_s8((const int8_t*)taps[0] + c);
            for (size_t k = 1; k < ntaps; ++k) m = vmaxq_s8(m, vld1q_s8((const int8_t*)taps[k] + c));
            vst1q_s8((int8_t*)y + c, m);
        } else {
            uint8x16_t m = vld1q_u8(taps[0] + c);
            for (size_t k = 1; k < ntaps; ++k) m = vmaxq_u8(m, vld1q_u8(taps[k] + c));
            vst1q_u8(y + c, m);
        }
    }
    onnxq_maxpool_tail(c, channels, ntaps, taps, y, is_signed);
}

void onnxq_maxpool_u8_ukernel_16__neon(size_t channels, size_t ntaps, const uint8_t* const* taps,
                                       uint8_t* y) {
    max_neon(channels, ntaps, taps, y, 0);
}

void onnxq_maxpool_s8_ukernel_16__neon(size_t channels, size_t ntaps, const int8_t* const* taps,
                                       int8_t* y) {
    max_neon(channels, ntaps, (const uint8_t* const*)taps, (uint8_t*)y, 1);
}

/* 8 values (fewer: zero padded) widened to two int32x4. */
static inline void load8(const uint8_t* p, size_t len, int is_signed, int32x4_t out[2]) {
    uint8_t t[8] = {0};
    memcpy(t, p, len < 8 ? len : 8);
    if (is_signed) {
        int16x8_t w = vmovl_s8(vld1_s8((const int8_t*)t));
        out[0] = vmovl_s16(vget_low_s16(w));
        out[1] = vmovl_s16(vget_high_s16(w));
    } else {
        uint16x8_t w = vmovl_u8(vld1_u8(t));
        out[0] = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(w)));
        out[1] = vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(w)));
    }
}

/* Two int32x4 inside the type range -> up to 8 bytes. */
static inline void store8(uint8_t* y, int32x4_t a, int32x4_t b, size_t len, int is_signed) {
    int16x8_t w = vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
    uint8_t t[8];
    if (is_signed)
        vst1_s8((int8_t*)t, vqmovn_s16(w));
    else
        vst1_u8(t, vqmovun_s16(w));
    memcpy(y, t, len < 8 ? len : 8);
}

static void avg_neon(size_t channels, size_t ntaps, const uint8_t* const* taps, uint8_t* y,
                     const onnxq_avgpool_ukernel_params* p, int is_signed) {
    const float32x4_t xs = vdupq_n_f32(p->x_scale), cnt = vdupq_n_f32(p->count);
    const float32x4_t ys = vdupq_n_f32(p->y_scale), yzp = vdupq_n_f32(p->y_zp);
    const float32x4_t lo = vdupq_n_f32(p->lo), hi = vdupq_n_f32(p->hi);
    const int32x4_t xzp = vdupq_n_s32(p->x_zp);
    for (size_t c = 0; c < channels; c += 8) {
        const size_t len = channels - c < 8 ? channels - c : 8;
        float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0;
        for (size_t k = 0; k < ntaps; ++k) {
            int32x4_t v[2];
            load8(taps[k] + c, len, is_signed, v);
            s0 = vaddq_f32(s0, vmulq_f32(xs, vcvtq_f32_s32(vsubq_s32(v[0], xzp))));
            s1 = vaddq_f32(s1, vmulq_f32(xs, vcvtq_f32_s32(vsubq_s32(v[1], xzp))));
        }
        float32x4_t v0 = vaddq_f32(vdivq_f32(vdivq_f32(s0, cnt), ys), yzp);
        float32x4_t v1 = vaddq_f32(vdivq_f32(vdivq_f32(s1, cnt), ys), yzp);
        v0 = vminq_f32(vmaxq_f32(v0, lo), hi);
        v1 = vminq_f32(vmaxq_f32(v1, lo), hi);
        store8(y + c, vcvtnq_s32_f32(v0), vcvtnq_s32_f32(v1), len, is_signed);
    }
}

void onnxq_avgpool_u8_ukernel_8__neon(size_t channels, size_t ntaps, const uint8_t* const* taps,
                                      uint8_t* y, const onnxq_avgpool_ukernel_params* p) {
    avg_neon(channels, ntaps, taps, y, p, 0);
}

void onnxq_avgpool_s8_ukernel_8__neon(size_t channels, size_t ntaps, const int8_t* const* taps,
                                      int8_t* y, const onnxq_avgpool_ukernel_params* p) {
    avg_neon(channels, ntaps, (const uint8_t* const*)taps, (uint8_t*)y, p, 1);
}

static void gavg_neon(size_t channels, size_t rows, const uint8_t* x, size_t stride, uint8_t* y,
                      const onnxq_gavgpool_ukernel_params* p, int is_signed) {
    const float32x4_t m = vdupq_n_f32(p->multiplier);
    const float32x4_t lo = vdupq_n_f32(p->lo), hi = vdupq_n_f32(p->hi);
    const int32x4_t bias = vdupq_n_s32(p->bias), yzp = vdupq_n_s32(p->y_zp);
    for (size_t c = 0; c < channels; c += 8) {
        const size_t len = channels - c < 8 ? channels - c : 8;
        int32x4_t a0 = bias, a1 = bias;
        for (size_t r = 0; r < rows; ++r) {
            int32x4_t v[2];
            load8(x + r * stride + c, len, is_signed, v);
            a0 = vaddq_s32(a0, v[0]);
            a1 = vaddq_s32(a1, v[1]);
        }
        float32x4_t f0 = vminq_f32(vmaxq_f32(vmulq_f32(vcvtq_f32_s32(a0), m), lo), hi);
        float32x4_t f1 = vminq_f32(vmaxq_f32(vmulq_f32(vcvtq_f32_s32(a1), m), lo), hi);
        store8(y + c, vaddq_s32(vcvtnq_s32_f32(f0), yzp), vaddq_s32(vcvtnq_s32_f32(f1), yzp), len,
               is_signed);
    }
}

void onnxq_gavgpool_u8_ukernel_8__neon(size_t channels, size_t rows, const uint8_t* x,
                                       size_t stride, uint8_t* y,
                                       const onnxq_gavgpool_ukernel_params* p) {
    gavg_neon(channels, rows, x, stride, y, p, 0);
}

void onnxq_gavgpool_s8_ukernel_8__neon(size_t channels, size_t rows, const int8_t* x,
                                       size_t stride, int8_t* y,
                                       const onnxq_gavgpool_ukernel_params* p) {
    gavg_neon(channels, rows, (const uint8_t*)x, stride, (uint8_t*)y, p, 1);
}
#endif
