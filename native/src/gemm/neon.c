/* u8s8 GEMM, NEON without dot product: 2 rows x 16 columns per tile, exact 8-bit multiplies.
 *
 * A is flipped to s8 (a ^ 0x80 = a - 128; the lost 128 * colsum[n] starts the sums, as in the
 * dot-product kernel) so that smull multiplies it with B's s8 weights: 8 products in int16 per
 * instruction, added pairwise into int32 lanes by sadalp. In the packed layout (gemm/ukernel.h)
 * 16 bytes of B hold 4 columns x one 4-deep K group, so the row's 4 bytes of that group are
 * replicated to all lanes (dup); the low half of the product covers 2 columns, the high half 2
 * more, and each int32 lane holds part of one column's sum until the final pairwise add.
 *
 * When a block of B has no -128 (onnxq's symmetric weights are in [-127, 127]), two K groups are
 * summed in int16 before sadalp (smull then smlal): |a' * b| <= 128 * 127, two of them <= 32512
 * < 32767, exact. A block with -128 takes the plain path (smull, sadalp per group), also exact.
 * Per 16 K, 2 rows and 16 columns: 12 instructions for A, 16 loads of B, 96 (128 plain) for the
 * 512 multiply-adds.
 */
#if defined(__aarch64__)
#pragma GCC optimize("no-schedule-insns")
#include <arm_neon.h>
#include <string.h>

#include "gemm/store_neon.h"
#include "gemm/ukernel.h"

#define MR 2

#define ONNXQ_ALWAYS_INLINE static inline __attribute__((always_inline))

/* Flipped A bytes of K group g (0..3) of x, replicated to every 32-bit lane. */
#define BCAST(x, g) vreinterpretq_s8_s32(vdupq_laneq_s32(vreinterpretq_s32_s8(x), g))

ONNXQ_ALWAYS_INLINE int8x16_t load_a16(const uint8_t* a) {
    return vreinterpretq_s8_u8(veorq_u8(vld1q_u8(a), vdupq_n_u8(0x80)));
}

/* The K tail of a row (its last k % 16 bytes, zeros after, flipped), as in neondot.c. */
ONNXQ_ALWAYS_INLINE int8x16_t load_a_tail(const uint8_t* row, size_t k, uint8x16_t shift) {
    if (k >= 16)
        return vreinterpretq_s8_u8(
            veorq_u8(vqtbl1q_u8(vld1q_u8(row + k - 16), shift), vdupq_n_u8(0x80)));
    uint8_t t[16] = {0};
    memcpy(t, row, k);
    return load_a16(t);
}

/* acc[r][2q], acc[r][2q + 1] += K groups g and g + 1 of columns 4q .. 4q + 3 (b: the group
 * pair's 128 bytes; bg, bh: their 16 bytes of those columns). */
ONNXQ_ALWAYS_INLINE void quad(int32x4_t acc[MR][8], const int8x16_t* va, int rows, int safe, int g,
                              int q, int8x16_t bg, int8x16_t bh) {
#pragma GCC unroll 2
    for (int r = 0; r < rows; ++r) {
        const int8x16_t ag = g == 0 ? BCAST(va[r], 0) : BCAST(va[r], 2);
        const int8x16_t ah = g == 0 ? BCAST(va[r], 1) : BCAST(va[r], 3);
        int16x8_t lo = vmull_s8(vget_low_s8(ag), vget_low_s8(bg));
        int16x8_t hi = vmull_high_s8(ag, bg);
        if (safe) {
            lo = vmlal_s8(lo, vget_low_s8(ah), vget_low_s8(bh));
            hi = vmlal_high_s8(hi, ah, bh);
        } else {
            acc[r][2 * q] = vpadalq_s16(acc[r][2 * q], vmull_s8(vget_low_s8(ah), vget_low_s8(bh)));
            acc[r][2 * q + 1] = vpadalq_s16(acc[r][2 * q + 1], vmull_high_s8(ah, bh));
        }
        acc[r][2 * q] = vpadalq_s16(acc[r][2 * q], lo);
        acc[r][2 * q + 1] = vpadalq_s16(acc[r][2 * q + 1], hi);
    }
}

/* K groups g and g + 1 of all 16 columns; B loaded two vectors at a time (ldp). */
ONNXQ_ALWAYS_INLINE void pair(int32x4_t acc[MR][8], const int8x16_t* va, int rows, int safe,
                              const int8_t* b, int g) {
#pragma GCC unroll 2
    for (int q = 0; q < 4; q += 2) {
        const int8x16_t bg0 = vld1q_s8(b + 16 * q), bg1 = vld1q_s8(b + 16 * q + 16);
        const int8x16_t bh0 = vld1q_s8(b + 64 + 16 * q), bh1 = vld1q_s8(b + 64 + 16 * q + 16);
        quad(acc, va, rows, safe, g, q, bg0, bh0);
        quad(acc, va, rows, safe, g, q + 1, bg1, bh1);
    }
}

/* rows (1 or MR) rows from row i of columns block j. */
ONNXQ_ALWAYS_INLINE void tile(const onnxq_gemm_u8s8_ctx* ctx, const onnxq_gemm_out_neon* o,
                              const uint8_t* a, size_t lda, size_t i, size_t j, int rows, int safe,
                              const int32x4_t* init, uint8x16_t shift) {
    const size_t k = ctx->k, full = k & ~(size_t)15;
    const int8_t* b = ctx->w + j * ctx->kq * 64;
    const uint8_t* rp[MR];
    int32x4_t acc[MR][8];
#pragma GCC unroll 2
    for (int r = 0; r < rows; ++r) {
        rp[r] = a + (i + (size_t)r) * lda;
#pragma GCC unroll 8
        for (int q = 0; q < 8; ++q) acc[r][q] = vdupq_n_s32(0);
    }
    for (size_t kk = 0; kk < full; kk += 16, b += 256) {
        int8x16_t va[MR];
#pragma GCC unroll 2
        for (int r = 0; r < rows; ++r) va[r] = load_a16(rp[r] + kk);
        pair(acc, va, rows, safe, b, 0);
        pair(acc, va, rows, safe, b + 128, 2);
    }
    if (full < k) { /* 1 to 4 groups of 4 K: one or two group pairs */
        int8x16_t va[MR];
#pragma GCC unroll 2
        for (int r = 0; r < rows; ++r) va[r] = load_a_tail(rp[r], k, shift);
        pair(acc, va, rows, safe, b, 0);
        if (k - full > 8) pair(acc, va, rows, safe, b + 128, 2);
    }
    const size_t col = j * 16;
#pragma GCC unroll 2
    for (int r = 0; r < rows; ++r) {
        int32x4_t s[4];
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) s[q] = vaddq_s32(init[q], vpaddq_s32(acc[r][2 * q], acc[r][2 * q + 1]));
        onnxq_gemm_store16_neon(ctx, o, s[0], s[1], s[2], s[3], i + (size_t)r, col);
    }
}

/* 1 when the first `bytes` bytes of B (a multiple of 256) hold no -128. */
static int no_min_weight(const int8_t* b, size_t bytes) {
    int8x16_t m0 = vdupq_n_s8(0), m1 = m0;
    for (size_t t = 0; t < bytes; t += 32) {
        m0 = vminq_s8(m0, vld1q_s8(b + t));
        m1 = vminq_s8(m1, vld1q_s8(b + t + 16));
    }
    return vminvq_s8(vminq_s8(m0, m1)) != -128;
}

int onnxq_gemm_u8s8_ukernel_2x16c4__neon(const onnxq_gemm_u8s8_ctx* ctx, const uint8_t* a,
                                         size_t lda, size_t m) {
    const onnxq_gemm_out_neon o = onnxq_gemm_out_neon_make(ctx);
    const uint8x16_t iota = vcombine_u8(vcreate_u8(0x0706050403020100ull),
                                        vcreate_u8(0x0f0e0d0c0b0a0908ull));
    const uint8x16_t tail_n = vdupq_n_u8((uint8_t)(ctx->k & 15));
    /* 16 - n + i for i < n, 0xff (out of range: 0) after */
    const uint8x16_t shift = vorrq_u8(vaddq_u8(iota, vsubq_u8(vdupq_n_u8(16), tail_n)),
                                      vmvnq_u8(vcltq_u8(iota, tail_n)));
    const size_t used = (ctx->k + 15) / 16 * 256; /* bytes of a block the K loop reads */
    for (size_t j = 0; j < ctx->nb; ++j) {
        const size_t col = j * 16;
        int32x4_t init[4];
        for (int q = 0; q < 4; ++q) {
            const uint32x4_t cs = vreinterpretq_u32_s32(vld1q_s32(ctx->colsum + col + 4 * q));
            const uint32x4_t corr = vreinterpretq_u32_s32(vld1q_s32(ctx->corr + col + 4 * q));
            init[q] = vreinterpretq_s32_u32(vaddq_u32(corr, vshlq_n_u32(cs, 7)));
        }
        const size_t pairs = m / MR;
        if (no_min_weight(ctx->w + j * ctx->kq * 64, used)) {
            for (size_t p = 0; p < pairs; ++p) tile(ctx, &o, a, lda, MR * p, j, MR, 1, init, shift);
            if (m % MR) tile(ctx, &o, a, lda, m - 1, j, 1, 1, init, shift);
        } else {
            for (size_t p = 0; p < pairs; ++p) tile(ctx, &o, a, lda, MR * p, j, MR, 0, init, shift);
            if (m % MR) tile(ctx, &o, a, lda, m - 1, j, 1, 0, init, shift);
        }
    }
    return ONNXQ_OK;
}
#endif /* __aarch64__ */
