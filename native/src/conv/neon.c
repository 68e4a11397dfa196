/* NEON depthwise conv: 8 channels per step, u8 input widened to int16 and multiplied-accumulated
 * into int32 with vmlal (exact); weights recovered from the even / odd arrays by one add. */
#if defined(__aarch64__)
#include <arm_neon.h>

#include "conv/ukernel.h"
#include "onnxq_kernels.h" /* generated declarations */

void onnxq_dwconv_u8s8_rq_ukernel_c8__neon(const onnxq_dw_args* a, const uint8_t* const* input,
                                          uint8_t* out) {
    const float32x4_t lo = vdupq_n_f32(a->lo);
    const float32x4_t hi = vdupq_n_f32(a->hi);
    const int32x4_t yzp = vdupq_n_s32(a->y_zp);
    size_t c = 0;
    for (; c + 8 <= a->channels; c += 8) {
        int32x4_t acc0 = vld1q_s32(a->bias + c);
        int32x4_t acc1 = vld1q_s32(a->bias + c + 4);
        const int16_t* w = a->weights + (c / ONNXQ_DW_BLOCK) * 2 * ONNXQ_DW_BLOCK + c % ONNXQ_DW_BLOCK;
        for (size_t t = 0; t < a->taps; t++, w += a->tap_stride) {
            const int16x8_t x = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(input[t] + c)));
            const int16x8_t wt = vaddq_s16(vld1q_s16(w), vld1q_s16(w + ONNXQ_DW_BLOCK));
            acc0 = vmlal_s16(acc0, vget_low_s16(x), vget_low_s16(wt));
            acc1 = vmlal_high_s16(acc1, x, wt);
        }
        float32x4_t v0 = vmulq_f32(vcvtq_f32_s32(acc0), vld1q_f32(a->scale + c));
        float32x4_t v1 = vmulq_f32(vcvtq_f32_s32(acc1), vld1q_f32(a->scale + c + 4));
        v0 = vminq_f32(vmaxq_f32(v0, lo), hi);
        v1 = vminq_f32(vmaxq_f32(v1, lo), hi);
        const int32x4_t q0 = vaddq_s32(vcvtnq_s32_f32(v0), yzp);
        const int32x4_t q1 = vaddq_s32(vcvtnq_s32_f32(v1), yzp);
        vst1_u8(out + c, vqmovun_s16(vcombine_s16(vqmovn_s32(q0), vqmovn_s32(q1))));
    }
    onnxq_dw_channels_scalar(a, input, c, out);
}
#endif
