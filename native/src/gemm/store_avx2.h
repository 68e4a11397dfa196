/* AVX2 output stage of the u8s8 GEMM: 8 int32 accumulators -> C (private; include after the
 * file's #pragma GCC target with avx2). Same arithmetic as onnxq_requant_one. */
#ifndef ONNXQ_GEMM_STORE_AVX2_H
#define ONNXQ_GEMM_STORE_AVX2_H

#include <immintrin.h>
#include <string.h>

#include "common/requant_avx2.h"
#include "gemm/ukernel.h"

/* Stores min(cnt, 8) columns of row `row` from column col (col is a multiple of 8, so the padded
 * scale/bias arrays can be read in full). */
static inline void onnxq_gemm_store8_avx2(const onnxq_gemm_u8s8_ctx* ctx, __m256i acc, size_t row,
                                          size_t col, size_t cnt) {
    if (cnt > 8) cnt = 8;
    const size_t off = row * ctx->ldc + col;
    switch (ctx->out_type) {
        case ONNXQ_U8:
        case ONNXQ_S8: {
            const __m256i q = onnxq_requant_avx2(acc, _mm256_loadu_ps(ctx->scale + col),
                                                 _mm256_set1_ps(ctx->lo), _mm256_set1_ps(ctx->hi),
                                                 _mm256_set1_epi32(ctx->out_zp));
            onnxq_store_bytes_avx2(q, (uint8_t*)ctx->c + off, cnt);
            break;
        }
        case ONNXQ_F32: {
            __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), _mm256_loadu_ps(ctx->scale + col));
            if (ctx->bias_f != NULL) v = _mm256_add_ps(v, _mm256_loadu_ps(ctx->bias_f + col));
            if (cnt == 8) {
                _mm256_storeu_ps((float*)ctx->c + off, v);
            } else {
                float tmp[8];
                _mm256_storeu_ps(tmp, v);
                memcpy((float*)ctx->c + off, tmp, cnt * sizeof(float));
            }
            break;
        }
        default: {
            if (cnt == 8) {
                _mm256_storeu_si256((__m256i*)((int32_t*)ctx->c + off), acc);
            } else {
                int32_t tmp[8];
                _mm256_storeu_si256((__m256i*)tmp, acc);
                memcpy((int32_t*)ctx->c + off, tmp, cnt * sizeof(int32_t));
            }
            break;
        }
    }
}

#endif /* ONNXQ_GEMM_STORE_AVX2_H */
