/* u8s8 GEMM, AVX2, when every byte of A is below 128: vpmaddubsw without saturation.
 *
 * vpmaddubsw multiplies u8 by s8 and sums each pair of products in int16 with saturation. With
 * every A byte in [0, 127] and B in [-128, 127], |a0 b0 + a1 b1| <= 127 * 128 * 2 = 32512 < 2^15:
 * no pair saturates, and the pair sums widened and added by vpmaddwd with ones are exact. This
 * is onnxruntime's U8S8 arithmetic on AVX2, exact here because the precondition is checked on the
 * whole of A first (onnxq_gemm_a_below_128_avx2, stopping at the first byte that is not). It holds
 * for 7-bit activations (PyTorch's x86 preset, onnxq's x86-avx2 target: qmax 127) and for any
 * layer whose inputs happen to stay below 128; one multiply then does 32 MACs where the int16
 * kernel (avx2.c) does 16.
 *
 * Tile: 4 rows x 16 columns (one packed block). Per 4-deep K group: B's 64 bytes are two ymm (8
 * columns x 4 bytes each), A's 4 bytes of a row one broadcast; vpmaddubsw + vpmaddwd(ones) give
 * each column's 4-product sum in an int32 lane, in column order. Blocks of 16 columns outside, row
 * tiles inside: a block's K x 16 bytes stay in L1/L2 while the rows stream past them.
 */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#include <string.h>

#include "gemm/store_avx2.h"
#include "gemm/u7_avx2.h"
#include "gemm/ukernel.h"

#define MR 4

int onnxq_gemm_a_below_128_avx2(const uint8_t* a, size_t lda, size_t m, size_t k) {
    const __m256i high = _mm256_set1_epi8((char)0x80);
    for (size_t i = 0; i < m; ++i) {
        const uint8_t* row = a + i * lda;
        __m256i any = _mm256_setzero_si256();
        size_t t = 0;
        for (; t + 32 <= k; t += 32) any = _mm256_or_si256(any, _mm256_loadu_si256((const __m256i*)(row + t)));
        if (!_mm256_testz_si256(any, high)) return 0;
        for (; t < k; ++t)
            if (row[t] & 0x80u) return 0;
    }
    return 1;
}

/* Rows [i0, i0 + mr) (mr <= MR) x the 16 columns of block j. */
static void tile(const onnxq_gemm_u8s8_ctx* ctx, const uint8_t* a, size_t lda, size_t i0, size_t mr,
                 size_t j) {
    const size_t k = ctx->k, groups = (k + 3) / 4, full = k / 4;
    const int8_t* b = ctx->w + j * ctx->kq * 64;
    const __m256i ones = _mm256_set1_epi16(1);
    const uint8_t* row[MR];
    for (size_t r = 0; r < MR; ++r) row[r] = a + (i0 + (r < mr ? r : mr - 1)) * lda;
    __m256i lo[MR], hi[MR];
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) lo[r] = hi[r] = _mm256_setzero_si256();
    for (size_t g = 0; g < groups; ++g) {
        const __m256i b_lo = _mm256_loadu_si256((const __m256i*)(b + g * 64));
        const __m256i b_hi = _mm256_loadu_si256((const __m256i*)(b + g * 64 + 32));
#pragma GCC unroll 4
        for (int r = 0; r < MR; ++r) {
            uint32_t a4;
            if (g < full) {
                memcpy(&a4, row[r] + 4 * g, 4);
            } else {
                a4 = onnxq_gemm_load_a4(row[r], k, g);
            }
            const __m256i va = _mm256_set1_epi32((int)a4);
            lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(_mm256_maddubs_epi16(va, b_lo), ones));
            hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(_mm256_maddubs_epi16(va, b_hi), ones));
        }
    }
    const size_t col = j * 16;
    const __m256i corr_lo = _mm256_loadu_si256((const __m256i*)(ctx->corr + col));
    const __m256i corr_hi = _mm256_loadu_si256((const __m256i*)(ctx->corr + col + 8));
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) {
        if ((size_t)r >= mr) break;
        onnxq_gemm_store8_avx2(ctx, _mm256_add_epi32(lo[r], corr_lo), i0 + r, col, ctx->n - col);
        if (col + 8 < ctx->n)
            onnxq_gemm_store8_avx2(ctx, _mm256_add_epi32(hi[r], corr_hi), i0 + r, col + 8, ctx->n - col - 8);
    }
}

void onnxq_gemm_u7s8_avx2(const onnxq_gemm_u8s8_ctx* ctx, const uint8_t* a, size_t lda, size_t m) {
    for (size_t j = 0; j < ctx->nb; ++j)
        for (size_t i = 0; i < m; i += MR) tile(ctx, a, lda, i, m - i < MR ? m - i : MR, j);
}
#endif /* __x86_64__ */
