/* u8s8 GEMM, AVX-512 VNNI: 8 rows x 48 columns per step (24 zmm accumulators, vpdpbusd); column
 * tails use 32- or 16-column variants, row tails (and GEMV-like calls with m < 8) 4-, 2- or 1-row
 * variants of the same tile.
 *
 * Loop nest. Small B (at most SMALL_B bytes of packed weights actually read, e.g. 1x1 convs with
 * few input channels): 8-row steps outside, every column block inside, so each step's rows of A
 * stay in L1 and each output row is written once, left to right. Otherwise: blocks of up to MC
 * rows (A stays in L2), then triples of 16-column blocks of packed B (kq * 192 bytes, kept in
 * L2), then 8-row steps. K runs in 4-byte groups: one broadcast of A[r, 4g..4g+3] and one 64-byte
 * load per B block, the last partial group read byte by byte so A is never read past K.
 * Output stage: onnxq_gemm_store_row_avx512 (store_avx512.h), one row of up to 3 blocks at once.
 */
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
#include <immintrin.h>
#include <string.h>

#include "gemm/store_avx512.h"
#include "gemm/ukernel.h"

#define MR 8
#define NBMAX 3                            /* 16-column blocks per step */
#define SMALL_B ((size_t)32 * 1024)        /* bytes of B read per row step that fit L1 */

static inline __m512i bcast_a4(const uint8_t* row, size_t g) {
    int32_t v;
    memcpy(&v, row + 4 * g, 4);
    return _mm512_set1_epi32(v);
}

/* rows[0..mrt) x blocks j0 .. j0 + nbt of B; stores mr <= mrt rows. mrt and nbt are constants at
 * every call site, so each call inlines to its own kernel. With fewer rows, K is split over
 * S = 8 / mrt interleaved accumulator sets (still 8 * nbt independent vpdpbusd chains), so short
 * tiles are not bound by the latency of one accumulator; the sets are added at the end. */
static inline __attribute__((always_inline)) void tile_x(const onnxq_gemm_u8s8_ctx* ctx,
                                                         const onnxq_gemm_out_avx512* oc,
                                                         const uint8_t* const* rows, size_t i0,
                                                         size_t mr, size_t j0, const int mrt,
                                                         const int nbt) {
    const int sets = MR / mrt;
    const size_t k = ctx->k, groups = k / 4, stride = ctx->kq * 64;
    const int8_t* b[NBMAX];
    __m512i acc[NBMAX][MR]; /* acc[block][s * mrt + r]: set s, row r */
#pragma GCC unroll 3
    for (int c = 0; c < nbt; ++c) {
        b[c] = ctx->w + (j0 + (size_t)c) * stride;
        const __m512i corr = _mm512_loadu_si512(ctx->corr + (j0 + (size_t)c) * 16);
#pragma GCC unroll 8
        for (int t = 0; t < MR; ++t) acc[c][t] = t < mrt ? corr : _mm512_setzero_si512();
    }
    size_t g = 0;
    for (; g + (size_t)sets <= groups; g += (size_t)sets) {
#pragma GCC unroll 8
        for (int s = 0; s < sets; ++s) {
            __m512i vb[NBMAX];
#pragma GCC unroll 3
            for (int c = 0; c < nbt; ++c) vb[c] = _mm512_loadu_si512(b[c] + (g + s) * 64);
#pragma GCC unroll 8
            for (int r = 0; r < mrt; ++r) {
                const __m512i va = bcast_a4(rows[r], g + s);
#pragma GCC unroll 3
                for (int c = 0; c < nbt; ++c)
                    acc[c][s * mrt + r] = _mm512_dpbusd_epi32(acc[c][s * mrt + r], va, vb[c]);
            }
        }
    }
    for (; g < (k + 3) / 4; ++g) { /* leftover groups, then the partial group of K % 4 bytes */
        __m512i vb[NBMAX];
#pragma GCC unroll 3
        for (int c = 0; c < nbt; ++c) vb[c] = _mm512_loadu_si512(b[c] + g * 64);
#pragma GCC unroll 8
        for (int r = 0; r < mrt; ++r) {
            const __m512i va = g < groups ? bcast_a4(rows[r], g)
                                          : _mm512_set1_epi32((int32_t)onnxq_gemm_load_a4(rows[r], k, g));
#pragma GCC unroll 3
            for (int c = 0; c < nbt; ++c) acc[c][r] = _mm512_dpbusd_epi32(acc[c][r], va, vb[c]);
        }
    }
#pragma GCC unroll 8
    for (int s = 1; s < sets; ++s)
#pragma GCC unroll 8
        for (int r = 0; r < mrt; ++r)
#pragma GCC unroll 3
            for (int c = 0; c < nbt; ++c) acc[c][r] = _mm512_add_epi32(acc[c][r], acc[c][s * mrt + r]);
    const size_t col0 = j0 * 16, cnt = ctx->n - col0;
#pragma GCC unroll 8
    for (int r = 0; r < mrt; ++r) {
        if ((size_t)r >= mr) break;
        __m512i row_acc[NBMAX];
#pragma GCC unroll 3
        for (int c = 0; c < nbt; ++c) row_acc[c] = acc[c][r];
        onnxq_gemm_store_row_avx512(ctx, oc, row_acc, i0 + r, col0, cnt, nbt);
    }
}

/* The narrowest tile that covers mr rows (fewer rows: fewer dot products) and nbt blocks. */
#define ONNXQ_TILE_ROWS(NBT)                                                   \
    do {                                                                       \
        if (mr > 4) tile_x(ctx, oc, rows, i0, mr, j0, 8, NBT);                 \
        else if (mr > 2) tile_x(ctx, oc, rows, i0, mr, j0, 4, NBT);            \
        else if (mr == 2) tile_x(ctx, oc, rows, i0, mr, j0, 2, NBT);           \
        else tile_x(ctx, oc, rows, i0, mr, j0, 1, NBT);                        \
    } while (0)

static void tile(const onnxq_gemm_u8s8_ctx* ctx, const onnxq_gemm_out_avx512* oc, const uint8_t* const* rows,
                 size_t i0, size_t mr, size_t j0) {
    const size_t left = ctx->nb - j0;
    if (left >= 3)
        ONNXQ_TILE_ROWS(3);
    else if (left == 2)
        ONNXQ_TILE_ROWS(2);
    else
        ONNXQ_TILE_ROWS(1);
}
#undef ONNXQ_TILE_ROWS

/* Rows [i, i + mr) of A as MR row pointers (the last row repeated past mr). */
static inline void row_ptrs(const uint8_t** rows, const uint8_t* a, size_t lda, size_t i,
                            size_t mr) {
    for (size_t r = 0; r < MR; ++r) rows[r] = a + (i + (r < mr ? r : mr - 1)) * lda;
}

int onnxq_gemm_u8s8_ukernel_8x48c4__avx512vnni(const onnxq_gemm_u8s8_ctx* ctx, const uint8_t* a,
                                               size_t lda, size_t m) {
    onnxq_gemm_out_avx512 oc;
    onnxq_gemm_out_init_avx512(ctx, &oc);
    const uint8_t* rows[MR];
    if (ctx->nb * ((ctx->k + 3) / 4) * 64 <= SMALL_B) {
        for (size_t i = 0; i < m; i += MR) {
            const size_t mr = m - i < MR ? m - i : MR;
            row_ptrs(rows, a, lda, i, mr);
            for (size_t j = 0; j < ctx->nb; j += NBMAX) tile(ctx, &oc, rows, i, mr, j);
        }
        return ONNXQ_OK;
    }
    /* rows per block so that the block of A is about 256 KiB (at least one step) */
    size_t mc = ((size_t)256 * 1024 / (ctx->k + 1)) / MR * MR;
    if (mc < MR) mc = MR;
    for (size_t ib = 0; ib < m; ib += mc) {
        const size_t iend = ib + mc < m ? ib + mc : m;
        for (size_t j = 0; j < ctx->nb; j += NBMAX) {
            for (size_t i = ib; i < iend; i += MR) {
                const size_t mr = iend - i < MR ? iend - i : MR;
                row_ptrs(rows, a, lda, i, mr);
                tile(ctx, &oc, rows, i, mr, j);
            }
        }
    }
    return ONNXQ_OK;
}
#endif /* __x86_64__ */
