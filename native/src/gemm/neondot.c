/* u8s8 GEMM, NEON dot product (sdot): 4 rows x 16 columns per step, 16 int32x4 accumulators.
 *
 * sdot multiplies s8 x s8 only, so A is flipped to s8 (a ^ 0x80 = a - 128) and the lost
 * 128 * colsum[n] is folded into the starting accumulator: corr + 128 * colsum (wrapping).
 * One sdot per 4 columns consumes a K group: 16 bytes of B (4 columns x 4 k) against A's 4 bytes
 * replicated to every lane.
 */
#if defined(__aarch64__)
#pragma GCC target("arch=armv8.2-a+dotprod")
#include <arm_neon.h>
#include <string.h>

#include "gemm/store_neon.h"
#include "gemm/ukernel.h"

#define MR 4

static inline int8x16_t bcast_a4(uint32_t a4) {
    return vreinterpretq_s8_u32(vdupq_n_u32(a4 ^ 0x80808080u));
}

static void tile_4x16(const onnxq_gemm_u8s8_ctx* ctx, const uint8_t* const* rows, size_t i0,
                      size_t mr, size_t j) {
    const size_t k = ctx->k, groups = (k + 3) / 4, full = k / 4;
    const int8_t* b = ctx->w + j * ctx->kq * 64;
    const size_t col = j * 16;
    int32x4_t init[4];
    for (int q = 0; q < 4; ++q) {
        const uint32x4_t cs = vreinterpretq_u32_s32(vld1q_s32(ctx->colsum + col + 4 * q));
        const uint32x4_t corr = vreinterpretq_u32_s32(vld1q_s32(ctx->corr + col + 4 * q));
        init[q] = vreinterpretq_s32_u32(vaddq_u32(corr, vshlq_n_u32(cs, 7)));
    }
    int32x4_t acc[MR][4];
    for (int r = 0; r < MR; ++r)
        for (int q = 0; q < 4; ++q) acc[r][q] = init[q];
    for (size_t g = 0; g < groups; ++g) {
        const int8x16_t b0 = vld1q_s8(b + g * 64), b1 = vld1q_s8(b + g * 64 + 16);
        const int8x16_t b2 = vld1q_s8(b + g * 64 + 32), b3 = vld1q_s8(b + g * 64 + 48);
        for (int r = 0; r < MR; ++r) {
            uint32_t a4;
            if (g < full)
                memcpy(&a4, rows[r] + 4 * g, 4);
            else
                a4 = onnxq_gemm_load_a4(rows[r], k, g);
            /* bytes past K are 0 in A but multiply zero weights: flipping them is harmless */
            const int8x16_t va = bcast_a4(a4);
            acc[r][0] = vdotq_s32(acc[r][0], va, b0);
            acc[r][1] = vdotq_s32(acc[r][1], va, b1);
            acc[r][2] = vdotq_s32(acc[r][2], va, b2);
            acc[r][3] = vdotq_s32(acc[r][3], va, b3);
        }
    }
    for (size_t r = 0; r < mr; ++r)
        for (int q = 0; q < 4 && col + 4 * (size_t)q < ctx->n; ++q)
            onnxq_gemm_store4_neon(ctx, acc[r][q], i0 + r, col + 4 * q, ctx->n - col - 4 * q);
}

int onnxq_gemm_u8s8_ukernel_4x16c4__neondot(const onnxq_gemm_u8s8_ctx* ctx, const uint8_t* a,
                                            size_t lda, size_t m) {
    for (size_t j = 0; j < ctx->nb; ++j)
        for (size_t i = 0; i < m; i += MR) {
            const size_t mr = m - i < MR ? m - i : MR;
            const uint8_t* rows[MR];
            for (size_t r = 0; r < MR; ++r) rows[r] = a + (i + (r < mr ? r : mr - 1)) * lda;
            tile_4x16(ctx, rows, i, mr, j);
        }
    return ONNXQ_OK;
}
#endif /* __aarch64__ */
