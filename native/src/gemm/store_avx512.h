/* AVX-512 output stage of the u8s8 GEMM: 16 int32 accumulators -> C (private; include after
 * the file's #pragma GCC target with avx512f/bw/vl). Same arithmetic as onnxq_requant_one. */
#ifndef ONNXQ_GEMM_STORE_AVX512_H
#define ONNXQ_GEMM_STORE_AVX512_H

#include <immintrin.h>

#include "gemm/ukernel.h"

static inline __mmask16 onnxq_gemm_mask16(size_t cnt) {
    return cnt >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << cnt) - 1u);
}

/* Stores min(cnt, 16) columns of row `row` starting at column col (col is a multiple of 16, so
 * the padded scale/bias arrays can be read in full). */
static inline void onnxq_gemm_store16_avx512(const onnxq_gemm_u8s8_ctx* ctx, __m512i acc,
                                             size_t row, size_t col, size_t cnt) {
    const __mmask16 m = onnxq_gemm_mask16(cnt);
    const size_t off = row * ctx->ldc + col;
    switch (ctx->out_type) {
        case ONNXQ_U8:
        case ONNXQ_S8: {
            __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), _mm512_loadu_ps(ctx->scale + col));
            v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(ctx->lo)), _mm512_set1_ps(ctx->hi));
            const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(v), _mm512_set1_epi32(ctx->out_zp));
            _mm512_mask_cvtepi32_storeu_epi8((uint8_t*)ctx->c + off, m, q);
            break;
        }
        case ONNXQ_F32: {
            __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), _mm512_loadu_ps(ctx->scale + col));
            if (ctx->bias_f != NULL) v = _mm512_add_ps(v, _mm512_loadu_ps(ctx->bias_f + col));
            _mm512_mask_storeu_ps((float*)ctx->c + off, m, v);
            break;
        }
        default:
            _mm512_mask_storeu_epi32((int32_t*)ctx->c + off, m, acc);
            break;
    }
}

#endif /* ONNXQ_GEMM_STORE_AVX512_H */
