/* u8s8 GEMM, AVX-512 VNNI: 8 rows x 32 columns per step (16 zmm accumulators, vpdpbusd); row
 * tails (and GEMV-like calls with m < 8) use 4-, 2- or 1-row variants of the same tile.
 *
 * Loop nest: blocks of up to MC rows (A stays in L2), then pairs of 16-column blocks of packed B
 * (one pair of B panels, kq * 128 bytes, stays in L2), then 8-row steps. K runs in 4-byte groups:
 * one broadcast of A[r, 4g..4g+3] and one 64-byte load per B block, the last partial group read
 * byte by byte so A is never read past K.
 */
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
#include <immintrin.h>
#include <string.h>

#include "gemm/store_avx512.h"
#include "gemm/ukernel.h"

#define MR 8

static inline __m512i bcast_a4(const uint8_t* row, size_t g) {
    int32_t v;
    memcpy(&v, row + 4 * g, 4);
    return _mm512_set1_epi32(v);
}

/* rows[0..mrt) x blocks j0, j0 + 1 of B; stores mr <= mrt rows. mrt is a constant at every
 * call site (8, 4, 2 or 1), so each call inlines to its own kernel. With fewer rows, K is split
 * over S = 8 / mrt interleaved accumulator sets (still 16 independent vpdpbusd chains), so short
 * tiles are not bound by the latency of one accumulator; the sets are added at the end. */
static inline __attribute__((always_inline)) void tile_x32(const onnxq_gemm_u8s8_ctx* ctx,
                                                           const uint8_t* const* rows, size_t i0,
                                                           size_t mr, size_t j0, int two,
                                                           const int mrt) {
    const int sets = MR / mrt;
    const size_t k = ctx->k, groups = k / 4, stride = ctx->kq * 64;
    const int8_t* b0 = ctx->w + j0 * stride;
    const int8_t* b1 = two ? b0 + stride : b0;
    __m512i acc0[MR], acc1[MR]; /* acc[s * mrt + r]: set s, row r */
    const __m512i c0 = _mm512_loadu_si512(ctx->corr + j0 * 16);
    const __m512i c1 = two ? _mm512_loadu_si512(ctx->corr + j0 * 16 + 16) : c0;
#pragma GCC unroll 8
    for (int t = 0; t < MR; ++t) {
        acc0[t] = t < mrt ? c0 : _mm512_setzero_si512();
        acc1[t] = t < mrt ? c1 : _mm512_setzero_si512();
    }
    size_t g = 0;
    for (; g + (size_t)sets <= groups; g += (size_t)sets) {
        _mm_prefetch((const char*)(b0 + g * 64 + 512), _MM_HINT_T0);
        _mm_prefetch((const char*)(b1 + g * 64 + 512), _MM_HINT_T0);
#pragma GCC unroll 8
        for (int s = 0; s < sets; ++s) {
            const __m512i vb0 = _mm512_loadu_si512(b0 + (g + s) * 64);
            const __m512i vb1 = _mm512_loadu_si512(b1 + (g + s) * 64);
#pragma GCC unroll 8
            for (int r = 0; r < mrt; ++r) {
                const __m512i va = bcast_a4(rows[r], g + s);
                acc0[s * mrt + r] = _mm512_dpbusd_epi32(acc0[s * mrt + r], va, vb0);
                acc1[s * mrt + r] = _mm512_dpbusd_epi32(acc1[s * mrt + r], va, vb1);
            }
        }
    }
    for (; g < (k + 3) / 4; ++g) { /* leftover groups, then the partial group of K % 4 bytes */
        const __m512i vb0 = _mm512_loadu_si512(b0 + g * 64);
        const __m512i vb1 = _mm512_loadu_si512(b1 + g * 64);
#pragma GCC unroll 8
        for (int r = 0; r < mrt; ++r) {
            const __m512i va = g < groups ? bcast_a4(rows[r], g)
                                          : _mm512_set1_epi32((int32_t)onnxq_gemm_load_a4(rows[r], k, g));
            acc0[r] = _mm512_dpbusd_epi32(acc0[r], va, vb0);
            acc1[r] = _mm512_dpbusd_epi32(acc1[r], va, vb1);
        }
    }
#pragma GCC unroll 8
    for (int s = 1; s < sets; ++s)
#pragma GCC unroll 8
        for (int r = 0; r < mrt; ++r) {
            acc0[r] = _mm512_add_epi32(acc0[r], acc0[s * mrt + r]);
            acc1[r] = _mm512_add_epi32(acc1[r], acc1[s * mrt + r]);
        }
    const size_t col0 = j0 * 16;
    const size_t cnt0 = ctx->n - col0 < 16 ? ctx->n - col0 : 16;
#pragma GCC unroll 8
    for (int r = 0; r < mrt; ++r) {
        if ((size_t)r >= mr) break;
        onnxq_gemm_store16_avx512(ctx, acc0[r], i0 + r, col0, cnt0);
        if (two) onnxq_gemm_store16_avx512(ctx, acc1[r], i0 + r, col0 + 16, ctx->n - col0 - 16);
    }
}

/* The narrowest tile that covers mr rows (fewer rows: fewer dot products). */
static void tile(const onnxq_gemm_u8s8_ctx* ctx, const uint8_t* const* rows, size_t i0, size_t mr,
                 size_t j0, int two) {
    if (mr > 4)
        tile_x32(ctx, rows, i0, mr, j0, two, 8);
    else if (mr > 2)
        tile_x32(ctx, rows, i0, mr, j0, two, 4);
    else if (mr == 2)
        tile_x32(ctx, rows, i0, mr, j0, two, 2);
    else
        tile_x32(ctx, rows, i0, mr, j0, two, 1);
}

int onnxq_gemm_u8s8_ukernel_8x32c4__avx512vnni(const onnxq_gemm_u8s8_ctx* ctx, const uint8_t* a,
                                               size_t lda, size_t m) {
    /* rows per block so that the block of A is about 256 KiB (at least one step) */
    size_t mc = ((size_t)256 * 1024 / (ctx->k + 1)) / MR * MR;
    if (mc < MR) mc = MR;
    for (size_t ib = 0; ib < m; ib += mc) {
        const size_t iend = ib + mc < m ? ib + mc : m;
        for (size_t j = 0; j < ctx->nb; j += 2) {
            const int two = j + 1 < ctx->nb;
            for (size_t i = ib; i < iend; i += MR) {
                const size_t mr = iend - i < MR ? iend - i : MR;
                const uint8_t* rows[MR];
                for (size_t r = 0; r < MR; ++r) rows[r] = a + (i + (r < mr ? r : mr - 1)) * lda;
                tile(ctx, rows, i, mr, j, two);
            }
        }
    }
    return ONNXQ_OK;
}
#endif /* __x86_64__ */
