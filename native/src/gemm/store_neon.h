/* NEON output stage of the u8s8 GEMM: 4 int32 accumulators -> C (private). Same arithmetic as
 * onnxq_requant_one: fmaxnm/fminnm clamp, fcvtns rounds half to even. */
#ifndef ONNXQ_GEMM_STORE_NEON_H
#define ONNXQ_GEMM_STORE_NEON_H

#include <arm_neon.h>
#include <string.h>

#include "common/requant_neon.h"
#include "gemm/ukernel.h"

/* Stores min(cnt, 4) columns of row `row` from column col (a multiple of 4). */
static inline void onnxq_gemm_store4_neon(const onnxq_gemm_u8s8_ctx* ctx, int32x4_t acc,
                                          size_t row, size_t col, size_t cnt) {
    if (cnt > 4) cnt = 4;
    const size_t off = row * ctx->ldc + col;
    switch (ctx->out_type) {
        case ONNXQ_U8:
        case ONNXQ_S8: {
            int32_t q[4];
            vst1q_s32(q, onnxq_requant_neon(acc, vld1q_f32(ctx->scale + col), vdupq_n_f32(ctx->lo),
                                            vdupq_n_f32(ctx->hi), vdupq_n_s32(ctx->out_zp)));
            uint8_t* c = (uint8_t*)ctx->c + off;
            for (size_t j = 0; j < cnt; ++j) c[j] = (uint8_t)q[j];
            break;
        }
        case ONNXQ_F32: {
            float32x4_t v = vmulq_f32(vcvtq_f32_s32(acc), vld1q_f32(ctx->scale + col));
            if (ctx->bias_f != NULL) v = vaddq_f32(v, vld1q_f32(ctx->bias_f + col));
            float t[4];
            vst1q_f32(t, v);
            memcpy((float*)ctx->c + off, t, cnt * sizeof(float));
            break;
        }
        default: {
            int32_t t[4];
            vst1q_s32(t, acc);
            memcpy((int32_t*)ctx->c + off, t, cnt * sizeof(int32_t));
            break;
        }
    }
}

#endif /* ONNXQ_GEMM_STORE_NEON_H */
