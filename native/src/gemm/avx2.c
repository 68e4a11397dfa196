/* u8s8 GEMM, AVX2, exact: 4 rows x 8 columns per step.
 *
 * vpmaddubsw would saturate u8 x s8 pair sums to int16, so both operands are widened to int16
 * and multiplied with vpmaddwd (exact int32 pair sums). The 4 rows of a step are widened once
 * into a scratch buffer (4 int16 per K group, zeros past K) and reused for every column block, so
 * the inner loop broadcasts them straight from memory. For one K group, 8 columns of B (32
 * bytes, 4 per column) widen to two ymm of int16, and vpmaddwd yields per column two partial
 * sums (k0+k1, k2+k3); they are folded with vphaddd + vpermq once, at the end of K.
 */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "common/internal.h"
#include "gemm/store_avx2.h"
#include "gemm/u7_avx2.h"
#include "gemm/ukernel.h"

#define MR 4

/* The 4 bytes of a K group as 4 little-endian int16 in a uint64. */
static inline uint64_t widen_a4(uint32_t a4) {
    return (uint64_t)(a4 & 0xffu) | ((uint64_t)((a4 >> 8) & 0xffu) << 16) |
           ((uint64_t)((a4 >> 16) & 0xffu) << 32) | ((uint64_t)(a4 >> 24) << 48);
}

/* aw[r * groups + g]: widened rows of the step x 8 columns at byte offset half * 32 of block j. */
static void tile_4x8(const onnxq_gemm_u8s8_ctx* ctx, const uint64_t* aw, size_t groups,
                     size_t i0, size_t mr, size_t j, size_t half) {
    const int8_t* b = ctx->w + j * ctx->kq * 64 + half * 32;
    __m256i lo[MR], hi[MR];
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) lo[r] = hi[r] = _mm256_setzero_si256();
    for (size_t g = 0; g < groups; ++g) {
        const __m256i wb_lo = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)(b + g * 64)));
        const __m256i wb_hi =
            _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)(b + g * 64 + 16)));
#pragma GCC unroll 4
        for (int r = 0; r < MR; ++r) {
            const __m256i va = _mm256_set1_epi64x((long long)aw[r * groups + g]);
            lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(va, wb_lo));
            hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(va, wb_hi));
        }
    }
    const size_t col = j * 16 + half * 8;
    const __m256i corr = _mm256_loadu_si256((const __m256i*)(ctx->corr + col));
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) {
        if ((size_t)r >= mr) break;
        const __m256i sums = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo[r], hi[r]), 0xd8);
        onnxq_gemm_store8_avx2(ctx, _mm256_add_epi32(sums, corr), i0 + r, col, ctx->n - col);
    }
}

int onnxq_gemm_u8s8_ukernel_4x8c4__avx2(const onnxq_gemm_u8s8_ctx* ctx, const uint8_t* a,
                                        size_t lda, size_t m) {
    if (onnxq_gemm_a_below_128_avx2(a, lda, m, ctx->k)) { /* no pair can saturate: vpmaddubsw */
        onnxq_gemm_u7s8_avx2(ctx, a, lda, m);
        return ONNXQ_OK;
    }
    const size_t k = ctx->k, groups = (k + 3) / 4;
    uint64_t* aw = (uint64_t*)malloc(MR * groups * sizeof(uint64_t));
    if (aw == NULL)
        return onnxq_error(ONNXQ_E_NOMEM, "gemm (avx2): cannot allocate %zu bytes", MR * groups * 8);
    for (size_t i = 0; i < m; i += MR) {
        const size_t mr = m - i < MR ? m - i : MR;
        for (size_t r = 0; r < MR; ++r) {
            const uint8_t* row = a + (i + (r < mr ? r : mr - 1)) * lda;
            for (size_t g = 0; g < groups; ++g)
                aw[r * groups + g] = widen_a4(onnxq_gemm_load_a4(row, k, g));
        }
        for (size_t j = 0; j < ctx->nb; ++j)
            for (size_t half = 0; half < 2 && j * 16 + half * 8 < ctx->n; ++half)
                tile_4x8(ctx, aw, groups, i, mr, j, half);
    }
    free(aw);
    return ONNXQ_OK;
}
#endif /* __x86_64__ */
