/* AVX-512 output stage of the u8s8 GEMM: 16 int32 accumulators -> C (private; include after
 * the file's #pragma GCC target with avx512f/bw/vl). Same arithmetic as onnxq_requant_one. */
#ifndef ONNXQ_GEMM_STORE_AVX512_H
#define ONNXQ_GEMM_STORE_AVX512_H

#include <immintrin.h>

#include "common/requant_avx512.h"
#include "gemm/ukernel.h"

/* Stores min(cnt, 16) columns of row `row` starting at column col (col is a multiple of 16, so
 * the padded scale/bias arrays can be read in full). */
static inline void onnxq_gemm_store16_avx512(const onnxq_gemm_u8s8_ctx* ctx, __m512i acc,
                                             size_t row, size_t col, size_t cnt) {
    const __mmask16 m = onnxq_mask16(cnt);
    const size_t off = row * ctx->ldc + col;
    switch (ctx->out_type) {
        case ONNXQ_U8:
        case ONNXQ_S8: {
            const __m512i q = onnxq_requant_avx512(acc, _mm512_loadu_ps(ctx->scale + col),
                                                   _mm512_set1_ps(ctx->lo), _mm512_set1_ps(ctx->hi),
                                                   _mm512_set1_epi32(ctx->out_zp));
            onnxq_store_bytes_avx512(q, (uint8_t*)ctx->c + off, m);
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
