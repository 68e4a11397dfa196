/* u8s8 GEMM, NEON dot product (sdot): MR rows x 16 columns per tile, MR * 4 int32x4 accumulators.
 *
 * sdot multiplies s8 x s8 only, so A is flipped to s8 (a ^ 0x80 = a - 128) and the lost
 * 128 * colsum[n] is folded into the starting accumulator: corr + 128 * colsum (wrapping).
 * The K loop takes 16 bytes of each row at a time (one load and one eor per row) and uses the
 * by-element sdot: for K group g of the 16 bytes, the 16 bytes of B holding 4 columns x 4 k are
 * multiplied with lane g of the row, so A is never replicated. Per 16 K and tile: MR loads and
 * eors of A, 16 loads of B, 16 * MR sdot.
 */
#if defined(__aarch64__)
#pragma GCC target("arch=armv8.2-a+dotprod")
#pragma GCC optimize("no-schedule-insns")
#include <arm_neon.h>
#include <string.h>

#include "gemm/store_neon.h"
#include "gemm/ukernel.h"

#define MR 4

/* 16 bytes of A, flipped to s8. */
static inline int8x16_t load_a16(const uint8_t* a) {
    return vreinterpretq_s8_u8(veorq_u8(vld1q_u8(a), vdupq_n_u8(0x80)));
}

static inline int8x16_t load_a16_tbl(const uint8_t* a, uint8x16_t shift) {
    return vreinterpretq_s8_u8(veorq_u8(vqtbl1q_u8(vld1q_u8(a), shift), vdupq_n_u8(0x80)));
}

/* The K tail of a row: its last n = k % 16 bytes, at the start of the vector, zeros after, flipped
 * (bytes past K are 0 in A but multiply zero weights, so flipping them is harmless). Never reads
 * past the row nor before it: with k >= 16 the 16 bytes ending at the row's end, moved down by
 * the table `shift` (16 - n + i for i < n, else out of range: 0); a copy otherwise. */
static inline int8x16_t load_a_tail(const uint8_t* row, size_t k, uint8x16_t shift) {
    const size_t n = k & 15;
    if (k >= 16) return load_a16_tbl(row + k - 16, shift);
    uint8_t t[16] = {0};
    memcpy(t, row, n);
    return load_a16(t);
}
/* acc[r][q] += K group g of the 16 K at b (256 bytes) times va[r]; B two vectors at a time. */
#define ONNXQ_DOT_GROUP(g)                                                                    \
    do {                                                                                      \
        const int8x16_t b0 = vld1q_s8(b + 64 * (g)), b1 = vld1q_s8(b + 64 * (g) + 16);      \
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; ++r) {                                \
            acc[r][0] = vdotq_laneq_s32(acc[r][0], b0, va[r], g);                             \
            acc[r][1] = vdotq_laneq_s32(acc[r][1], b1, va[r], g);                             \
        }                                                                                     \
        const int8x16_t b2 = vld1q_s8(b + 64 * (g) + 32), b3 = vld1q_s8(b + 64 * (g) + 48); \
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; ++r) {                                \
            acc[r][2] = vdotq_laneq_s32(acc[r][2], b2, va[r], g);                             \
            acc[r][3] = vdotq_laneq_s32(acc[r][3], b3, va[r], g);                             \
        }                                                                                     \
    } while (0)

static inline void tile(const onnxq_gemm_u8s8_ctx* ctx, const onnxq_gemm_out_neon* o,
                        const uint8_t* const* rows, size_t i0, size_t mr, size_t j,
                        const int32x4_t* init, uint8x16_t shift) {
    const size_t k = ctx->k, full = k & ~(size_t)15;
    const int8_t* b = ctx->w + j * ctx->kq * 64;
    const uint8_t* rp[MR];
    int32x4_t acc[MR][4];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
        rp[r] = rows[r];
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) acc[r][q] = init[q];
    }
    for (size_t kk = 0; kk < full; kk += 16, b += 256) {
        int8x16_t va[MR];
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) va[r] = load_a16(rp[r] + kk);
        ONNXQ_DOT_GROUP(0);
        ONNXQ_DOT_GROUP(1);
        ONNXQ_DOT_GROUP(2);
        ONNXQ_DOT_GROUP(3);
    }
    if (full < k) { /* 1 to 4 groups of 4 K */
        int8x16_t va[MR];
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) va[r] = load_a_tail(rp[r], k, shift);
        const size_t groups = (k - full + 3) / 4;
        ONNXQ_DOT_GROUP(0);
        if (groups > 1) ONNXQ_DOT_GROUP(1);
        if (groups > 2) ONNXQ_DOT_GROUP(2);
        if (groups > 3) ONNXQ_DOT_GROUP(3);
    }
    const size_t col = j * 16;
#pragma GCC unroll 8
    for (size_t r = 0; r < mr; ++r)
        onnxq_gemm_store16_neon(ctx, o, acc[r][0], acc[r][1], acc[r][2], acc[r][3], i0 + r, col);
}

int onnxq_gemm_u8s8_ukernel_4x16c4__neondot(const onnxq_gemm_u8s8_ctx* ctx, const uint8_t* a,
                                            size_t lda, size_t m) {
    const onnxq_gemm_out_neon o = onnxq_gemm_out_neon_make(ctx);
    const uint8x16_t iota = vcombine_u8(vcreate_u8(0x0706050403020100ull),
                                        vcreate_u8(0x0f0e0d0c0b0a0908ull));
    const uint8x16_t tail_n = vdupq_n_u8((uint8_t)(ctx->k & 15));
    /* 16 - n + i for i < n, 0xff (out of range) after */
    const uint8x16_t shift = vorrq_u8(vaddq_u8(iota, vsubq_u8(vdupq_n_u8(16), tail_n)),
                                      vmvnq_u8(vcltq_u8(iota, tail_n)));
    for (size_t j = 0; j < ctx->nb; ++j) {
        const size_t col = j * 16;
        int32x4_t init[4];
        for (int q = 0; q < 4; ++q) {
            const uint32x4_t cs = vreinterpretq_u32_s32(vld1q_s32(ctx->colsum + col + 4 * q));
            const uint32x4_t corr = vreinterpretq_u32_s32(vld1q_s32(ctx->corr + col + 4 * q));
            init[q] = vreinterpretq_s32_u32(vaddq_u32(corr, vshlq_n_u32(cs, 7)));
        }
        for (size_t i = 0; i < m; i += MR) {
            const size_t mr = m - i < MR ? m - i : MR;
            const uint8_t* rows[MR];
            for (size_t r = 0; r < MR; ++r) rows[r] = a + (i + (r < mr ? r : mr - 1)) * lda;
            tile(ctx, &o, rows, i, mr, j, init, shift);
        }
    }
    return ONNXQ_OK;
}
#endif /* __aarch64__ */
