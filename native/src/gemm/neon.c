/* u8s8 GEMM, NEON without dot product: 1 row x 16 columns, exact widening multiply-accumulate.
 * A's 4 bytes of a K group widen to int16x4; each column's 4 bytes of B widen to int16x4 and
 * smlal accumulates the 4 per-k products in one int32x4 per column, folded with addv at the end. */
#if defined(__aarch64__)
#include <arm_neon.h>

#include "gemm/store_neon.h"
#include "gemm/ukernel.h"

static void row_block(const onnxq_gemm_u8s8_ctx* ctx, const uint8_t* ar, size_t i, size_t j) {
    const size_t k = ctx->k, groups = (k + 3) / 4;
    const int8_t* b = ctx->w + j * ctx->kq * 64;
    int32x4_t acc[16];
    for (int c = 0; c < 16; ++c) acc[c] = vdupq_n_s32(0);
    for (size_t g = 0; g < groups; ++g) {
        const uint32_t a4 = onnxq_gemm_load_a4(ar, k, g);
        const int16x4_t va =
            vreinterpret_s16_u16(vget_low_u16(vmovl_u8(vcreate_u8((uint64_t)a4))));
        for (int q = 0; q < 4; ++q) {
            const int8x16_t bq = vld1q_s8(b + g * 64 + q * 16);
            const int16x8_t w0 = vmovl_s8(vget_low_s8(bq)), w1 = vmovl_s8(vget_high_s8(bq));
            acc[4 * q + 0] = vmlal_s16(acc[4 * q + 0], vget_low_s16(w0), va);
            acc[4 * q + 1] = vmlal_s16(acc[4 * q + 1], vget_high_s16(w0), va);
            acc[4 * q + 2] = vmlal_s16(acc[4 * q + 2], vget_low_s16(w1), va);
            acc[4 * q + 3] = vmlal_s16(acc[4 * q + 3], vget_high_s16(w1), va);
        }
    }
    const size_t col = j * 16;
    for (int q = 0; q < 4 && col + 4 * (size_t)q < ctx->n; ++q) {
        int32_t s[4];
        for (int t = 0; t < 4; ++t) s[t] = vaddvq_s32(acc[4 * q + t]);
        const int32x4_t sums = vaddq_s32(vld1q_s32(s), vld1q_s32(ctx->corr + col + 4 * q));
        onnxq_gemm_store4_neon(ctx, sums, i, col + 4 * q, ctx->n - col - 4 * q);
    }
}

int onnxq_gemm_u8s8_ukernel_1x16c4__neon(const onnxq_gemm_u8s8_ctx* ctx, const uint8_t* a,
                                         size_t lda, size_t m) {
    for (size_t j = 0; j < ctx->nb; ++j)
        for (size_t i = 0; i < m; ++i) row_block(ctx, a + i * lda, i, j);
    return ONNXQ_OK;
}
#endif /* __aarch64__ */
