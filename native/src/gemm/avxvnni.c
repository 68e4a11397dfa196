/* u8s8 GEMM, AVX-VNNI (VEX vpdpbusd on ymm): 6 rows x 16 columns per step, 12 accumulators.
 * Same loop nest as the AVX-512 kernel; a 16-column block is two ymm halves of each 64-byte group.
 */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma,avxvnni")
#include <immintrin.h>
#include <string.h>

#include "gemm/store_avx2.h"
#include "gemm/ukernel.h"

#define MR 6

static void tile_6x16(const onnxq_gemm_u8s8_ctx* ctx, const uint8_t* const* rows, size_t i0,
                      size_t mr, size_t j) {
    const size_t k = ctx->k, groups = k / 4;
    const int8_t* b = ctx->w + j * ctx->kq * 64;
    const __m256i c0 = _mm256_loadu_si256((const __m256i*)(ctx->corr + j * 16));
    const __m256i c1 = _mm256_loadu_si256((const __m256i*)(ctx->corr + j * 16 + 8));
    __m256i acc0[MR], acc1[MR];
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) acc0[r] = c0, acc1[r] = c1;
    for (size_t g = 0; g < groups; ++g) {
        const __m256i vb0 = _mm256_loadu_si256((const __m256i*)(b + g * 64));
        const __m256i vb1 = _mm256_loadu_si256((const __m256i*)(b + g * 64 + 32));
#pragma GCC unroll 6
        for (int r = 0; r < MR; ++r) {
            int32_t a4;
            memcpy(&a4, rows[r] + 4 * g, 4);
            const __m256i va = _mm256_set1_epi32(a4);
            acc0[r] = _mm256_dpbusd_avx_epi32(acc0[r], va, vb0);
            acc1[r] = _mm256_dpbusd_avx_epi32(acc1[r], va, vb1);
        }
    }
    if (k % 4) {
        const __m256i vb0 = _mm256_loadu_si256((const __m256i*)(b + groups * 64));
        const __m256i vb1 = _mm256_loadu_si256((const __m256i*)(b + groups * 64 + 32));
#pragma GCC unroll 6
        for (int r = 0; r < MR; ++r) {
            const __m256i va = _mm256_set1_epi32((int32_t)onnxq_gemm_load_a4(rows[r], k, groups));
            acc0[r] = _mm256_dpbusd_avx_epi32(acc0[r], va, vb0);
            acc1[r] = _mm256_dpbusd_avx_epi32(acc1[r], va, vb1);
        }
    }
    const size_t col = j * 16, left = ctx->n - col;
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
        if ((size_t)r >= mr) break;
        onnxq_gemm_store8_avx2(ctx, acc0[r], i0 + r, col, left);
        if (left > 8) onnxq_gemm_store8_avx2(ctx, acc1[r], i0 + r, col + 8, left - 8);
    }
}

int onnxq_gemm_u8s8_ukernel_6x16c4__avxvnni(const onnxq_gemm_u8s8_ctx* ctx, const uint8_t* a,
                                            size_t lda, size_t m) {
    size_t mc = ((size_t)256 * 1024 / (ctx->k + 1)) / MR * MR;
    if (mc < MR) mc = MR;
    for (size_t ib = 0; ib < m; ib += mc) {
        const size_t iend = ib + mc < m ? ib + mc : m;
        for (size_t j = 0; j < ctx->nb; ++j)
            for (size_t i = ib; i < iend; i += MR) {
                const size_t mr = iend - i < MR ? iend - i : MR;
                const uint8_t* rows[MR];
                for (size_t r = 0; r < MR; ++r) rows[r] = a + (i + (r < mr ? r : mr - 1)) * lda;
                tile_6x16(ctx, rows, i, mr, j);
            }
    }
    return ONNXQ_OK;
}
#endif /* __x86_64__ */
