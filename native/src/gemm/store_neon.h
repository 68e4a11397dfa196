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

/* The output stage's constants, made once per call. */
typedef struct onnxq_gemm_out_neon {
    float32x4_t lo, hi;
    int32x4_t zp;
    int narrow; /* 8-bit output */
} onnxq_gemm_out_neon;

static inline onnxq_gemm_out_neon onnxq_gemm_out_neon_make(const onnxq_gemm_u8s8_ctx* ctx) {
    const onnxq_gemm_out_neon o = {vdupq_n_f32(ctx->lo), vdupq_n_f32(ctx->hi),
                                   vdupq_n_s32(ctx->out_zp),
                                   ctx->out_type == ONNXQ_U8 || ctx->out_type == ONNXQ_S8};
    return o;
}

/* Stores the 16 columns [col, col + 16) of row `row` (fewer past n) from 4 accumulators, columns
 * 4q .. 4q + 3 in acc[q]. 8-bit outputs are requantised, narrowed and stored 16 bytes at once
 * (the values are inside the type's range: their low byte is the uint8 / int8). */
static inline void onnxq_gemm_store16_neon(const onnxq_gemm_u8s8_ctx* ctx,
                                           const onnxq_gemm_out_neon* o, int32x4_t a0,
                                           int32x4_t a1, int32x4_t a2, int32x4_t a3, size_t row,
                                           size_t col) {
    const size_t cnt = ctx->n - col < 16 ? ctx->n - col : 16;
    if (!o->narrow) {
        const int32x4_t acc[4] = {a0, a1, a2, a3};
        for (size_t q = 0; 4 * q < cnt; ++q)
            onnxq_gemm_store4_neon(ctx, acc[q], row, col + 4 * q, cnt - 4 * q);
        return;
    }
    const float* sc = ctx->scale + col;
    const int32x4_t q0 = onnxq_requant_neon(a0, vld1q_f32(sc), o->lo, o->hi, o->zp);
    const int32x4_t q1 = onnxq_requant_neon(a1, vld1q_f32(sc + 4), o->lo, o->hi, o->zp);
    const int32x4_t q2 = onnxq_requant_neon(a2, vld1q_f32(sc + 8), o->lo, o->hi, o->zp);
    const int32x4_t q3 = onnxq_requant_neon(a3, vld1q_f32(sc + 12), o->lo, o->hi, o->zp);
    const int16x8_t h0 = vcombine_s16(vmovn_s32(q0), vmovn_s32(q1));
    const int16x8_t h1 = vcombine_s16(vmovn_s32(q2), vmovn_s32(q3));
    const uint8x16_t v = vreinterpretq_u8_s8(vcombine_s8(vmovn_s16(h0), vmovn_s16(h1)));
    uint8_t* c = (uint8_t*)ctx->c + row * ctx->ldc + col;
    if (cnt == 16) {
        vst1q_u8(c, v);
    } else {
        uint8_t t[16];
        vst1q_u8(t, v);
        memcpy(c, t, cnt);
    }
}

#endif /* ONNXQ_GEMM_STORE_NEON_H */
