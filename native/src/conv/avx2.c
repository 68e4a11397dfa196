/* AVX2 depthwise conv: 16 channels per step; per tap one zero-extension of the u8 input to
 * int16 and two exact vpmaddwd with the even / odd weight arrays (see conv/ukernel.h; no
 * vpmaddubsw: it saturates). Requantisation in fp32 as MLAS. */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include "conv/ukernel.h"
#include "onnxq_kernels.h" /* generated declarations */

/* Requantises even / odd channel accumulators (8 each) into 16 bytes in channel order. */
static inline __m128i dw_requant16(__m256i acc_e, __m256i acc_o, const float* scale_e,
                                   const float* scale_o, __m256 lo, __m256 hi, __m256i yzp) {
    __m256 ve = _mm256_mul_ps(_mm256_cvtepi32_ps(acc_e), _mm256_loadu_ps(scale_e));
    __m256 vo = _mm256_mul_ps(_mm256_cvtepi32_ps(acc_o), _mm256_loadu_ps(scale_o));
    ve = _mm256_min_ps(_mm256_max_ps(ve, lo), hi);
    vo = _mm256_min_ps(_mm256_max_ps(vo, lo), hi);
    const __m256i qe = _mm256_add_epi32(_mm256_cvtps_epi32(ve), yzp);
    const __m256i qo = _mm256_add_epi32(_mm256_cvtps_epi32(vo), yzp);
    /* [e0 o0 e1 o1 | e4 o4 e5 o5] and [e2 o2 e3 o3 | e6 o6 e7 o7] -> channels 0-7 | 8-15 */
    const __m256i w16 =
        _mm256_packs_epi32(_mm256_unpacklo_epi32(qe, qo), _mm256_unpackhi_epi32(qe, qo));
    return _mm_packus_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
}

void onnxq_dwconv_u8s8_rq_ukernel_c16__avx2(const onnxq_dw_args* a, const uint8_t* const* input,
                                           uint8_t* out) {
    const __m256 lo = _mm256_set1_ps(a->lo);
    const __m256 hi = _mm256_set1_ps(a->hi);
    const __m256i yzp = _mm256_set1_epi32(a->y_zp);
    size_t c = 0;
    for (; c + 16 <= a->channels; c += 16) {
        const size_t blk = (c / ONNXQ_DW_BLOCK) * 2 * ONNXQ_DW_BLOCK; /* int16 / int32 offset */
        const size_t half = c % ONNXQ_DW_BLOCK;                       /* 0 or 16 */
        const size_t eo = blk / 2 + half / 2;                         /* into bias_eo/scale_eo */
        __m256i acc_e = _mm256_loadu_si256((const __m256i*)(a->bias_eo + eo));
        __m256i acc_o = _mm256_loadu_si256((const __m256i*)(a->bias_eo + eo + 16));
        const int16_t* w = a->weights + blk + half;
        for (size_t t = 0; t < a->taps; t++, w += a->tap_stride) {
            const __m256i x = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i*)(input[t] + c)));
            acc_e = _mm256_add_epi32(
                acc_e, _mm256_madd_epi16(x, _mm256_loadu_si256((const __m256i*)w)));
            acc_o = _mm256_add_epi32(
                acc_o, _mm256_madd_epi16(x, _mm256_loadu_si256((const __m256i*)(w + 32))));
        }
        _mm_storeu_si128((__m128i*)(out + c),
                         dw_requant16(acc_e, acc_o, a->scale_eo + eo, a->scale_eo + eo + 16, lo,
                                      hi, yzp));
    }
    onnxq_dw_channels_scalar(a, input, c, out);
}
#endif
