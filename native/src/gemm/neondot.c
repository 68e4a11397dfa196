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

/* The main loop of a 4x16 tile, 32 K per iteration (n >= 1 iterations): the same sdot arithmetic
 * as ONNXQ_DOT_GROUP, in assembly for its register use (GCC's loop pays extra moves and cannot
 * pair the loads). Each iteration is 4 ldp (A, two 16-byte steps per row), 8 eor (the flip),
 * 16 ldp (B) and 128 sdot. Accumulator acc[r][q] lives in v(4r + q), read from and written back
 * to acc (asm operands cannot name 16 vectors); A in v16-v23, the flip constant in v24, B in
 * v25-v28. Advances the row pointers and b. */
static inline void loop_4x16_k32(int32x4_t acc[4][4], const uint8_t** rp, const int8_t** bp,
                                 size_t n) {
    const uint8_t *a0 = rp[0], *a1 = rp[1], *a2 = rp[2], *a3 = rp[3];
    const int8_t* b = *bp;
/* one K group (lane) of 16 bytes of each row, its 64 bytes of B: 16 sdot */
#define ONNXQ_SDOT_GROUP(lane, va0, va1, va2, va3)                      \
    "ldp q25, q26, [%[b]], #32\n\t"                                    \
    "sdot v0.4s, v25.16b, " va0 ".4b[" #lane "]\n\t"                \
    "sdot v4.4s, v25.16b, " va1 ".4b[" #lane "]\n\t"                \
    "sdot v8.4s, v25.16b, " va2 ".4b[" #lane "]\n\t"                \
    "sdot v12.4s, v25.16b, " va3 ".4b[" #lane "]\n\t"                \
    "sdot v1.4s, v26.16b, " va0 ".4b[" #lane "]\n\t"                \
    "sdot v5.4s, v26.16b, " va1 ".4b[" #lane "]\n\t"                \
    "sdot v9.4s, v26.16b, " va2 ".4b[" #lane "]\n\t"                \
    "sdot v13.4s, v26.16b, " va3 ".4b[" #lane "]\n\t"                \
    "ldp q27, q28, [%[b]], #32\n\t"                                    \
    "sdot v2.4s, v27.16b, " va0 ".4b[" #lane "]\n\t"                \
    "sdot v6.4s, v27.16b, " va1 ".4b[" #lane "]\n\t"                \
    "sdot v10.4s, v27.16b, " va2 ".4b[" #lane "]\n\t"                \
    "sdot v14.4s, v27.16b, " va3 ".4b[" #lane "]\n\t"                \
    "sdot v3.4s, v28.16b, " va0 ".4b[" #lane "]\n\t"                \
    "sdot v7.4s, v28.16b, " va1 ".4b[" #lane "]\n\t"                \
    "sdot v11.4s, v28.16b, " va2 ".4b[" #lane "]\n\t"                \
    "sdot v15.4s, v28.16b, " va3 ".4b[" #lane "]\n\t"
#define ONNXQ_SDOT_STEP(va0, va1, va2, va3)      \
    ONNXQ_SDOT_GROUP(0, va0, va1, va2, va3)      \
    ONNXQ_SDOT_GROUP(1, va0, va1, va2, va3)      \
    ONNXQ_SDOT_GROUP(2, va0, va1, va2, va3)      \
    ONNXQ_SDOT_GROUP(3, va0, va1, va2, va3)
    __asm__ volatile(
        "ldp q0, q1, [%[acc]]\n\t"
        "ldp q2, q3, [%[acc], #32]\n\t"
        "ldp q4, q5, [%[acc], #64]\n\t"
        "ldp q6, q7, [%[acc], #96]\n\t"
        "ldp q8, q9, [%[acc], #128]\n\t"
        "ldp q10, q11, [%[acc], #160]\n\t"
        "ldp q12, q13, [%[acc], #192]\n\t"
        "ldp q14, q15, [%[acc], #224]\n\t"
        "movi v24.16b, #0x80\n\t"
        "1:\n\t"
        "ldp q16, q17, [%[a0]], #32\n\t"
        "ldp q18, q19, [%[a1]], #32\n\t"
        "ldp q20, q21, [%[a2]], #32\n\t"
        "ldp q22, q23, [%[a3]], #32\n\t"
        "eor v16.16b, v16.16b, v24.16b\n\t"
        "eor v18.16b, v18.16b, v24.16b\n\t"
        "eor v20.16b, v20.16b, v24.16b\n\t"
        "eor v22.16b, v22.16b, v24.16b\n\t"
        ONNXQ_SDOT_STEP("v16", "v18", "v20", "v22")
        "eor v17.16b, v17.16b, v24.16b\n\t"
        "eor v19.16b, v19.16b, v24.16b\n\t"
        "eor v21.16b, v21.16b, v24.16b\n\t"
        "eor v23.16b, v23.16b, v24.16b\n\t"
        ONNXQ_SDOT_STEP("v17", "v19", "v21", "v23")
        "subs %[n], %[n], #1\n\t"
        "b.ne 1b\n\t"
        "stp q0, q1, [%[acc]]\n\t"
        "stp q2, q3, [%[acc], #32]\n\t"
        "stp q4, q5, [%[acc], #64]\n\t"
        "stp q6, q7, [%[acc], #96]\n\t"
        "stp q8, q9, [%[acc], #128]\n\t"
        "stp q10, q11, [%[acc], #160]\n\t"
        "stp q12, q13, [%[acc], #192]\n\t"
        "stp q14, q15, [%[acc], #224]\n\t"
        : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [b] "+r"(b), [n] "+r"(n)
        : [acc] "r"(acc)
        : "cc", "memory", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10",
          "v11", "v12", "v13", "v14", "v15", "v16", "v17", "v18", "v19", "v20", "v21", "v22",
          "v23", "v24", "v25", "v26", "v27", "v28");
#undef ONNXQ_SDOT_STEP
#undef ONNXQ_SDOT_GROUP
    rp[0] = a0, rp[1] = a1, rp[2] = a2, rp[3] = a3;
    *bp = b;
}

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
    if (full >= 32) loop_4x16_k32(acc, rp, &b, full / 32);
    if (full & 16) { /* one 16-K step left: K = 16 * odd + tail */
        int8x16_t va[MR];
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) va[r] = load_a16(rp[r]);
        ONNXQ_DOT_GROUP(0);
        ONNXQ_DOT_GROUP(1);
        ONNXQ_DOT_GROUP(2);
        ONNXQ_DOT_GROUP(3);
        b += 256;
    }
    if (full < k) { /* 1 to 4 groups of 4 K */
        int8x16_t va[MR];
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) va[r] = load_a_tail(rows[r], k, shift);
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
