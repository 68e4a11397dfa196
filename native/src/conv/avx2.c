/* AVX2 depthwise conv: 16 channels per step, taps in pairs, exact int16 products summed by
 * vpmaddwd (no vpmaddubsw: it saturates). Requantisation in fp32 as MLAS. */
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include "conv_internal.h"

/* (x_t0 - zp, x_t1 - zp) interleaved for 8 channels, as 16 int16. */
static inline __m256i dw_pair8(__m128i x0, __m128i x1, __m256i zp, int hi) {
    __m128i il = hi ? _mm_unpackhi_epi8(x0, x1) : _mm_unpacklo_epi8(x0, x1);
    return _mm256_sub_epi16(_mm256_cvtepu8_epi16(il), zp);
}

static inline __m128i dw_requant16(__m256i acc0, __m256i acc1, const float* scale, __m256 lo,
                                   __m256 hi, __m256i yzp) {
    __m256 v0 = _mm256_mul_ps(_mm256_cvtepi32_ps(acc0), _mm256_loadu_ps(scale));
    __m256 v1 = _mm256_mul_ps(_mm256_cvtepi32_ps(acc1), _mm256_loadu_ps(scale + 8));
    v0 = _mm256_min_ps(_mm256_max_ps(v0, lo), hi);
    v1 = _mm256_min_ps(_mm256_max_ps(v1, lo), hi);
    __m256i q0 = _mm256_add_epi32(_mm256_cvtps_epi32(v0), yzp);
    __m256i q1 = _mm256_add_epi32(_mm256_cvtps_epi32(v1), yzp);
    __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q0, q1), 0xD8);
    return _mm_packus_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
}

void onnxq_dwconv_u8s8_rq_ukernel_c16__avx2(const onnxq_dw_args* a, const uint8_t* const* input,
                                           uint8_t* out) {
    const size_t taps = a->taps;
    const size_t pairs = (taps + 1) / 2;
    const __m256i zp = _mm256_set1_epi16((short)a->x_zp);
    const __m256 lo = _mm256_set1_ps(a->lo);
    const __m256 hi = _mm256_set1_ps(a->hi);
    const __m256i yzp = _mm256_set1_epi32(a->y_zp);
    size_t c = 0;
    for (; c + 16 <= a->channels; c += 16) {
        __m256i acc0 = _mm256_loadu_si256((const __m256i*)(a->bias + c));
        __m256i acc1 = _mm256_loadu_si256((const __m256i*)(a->bias + c + 8));
        for (size_t p = 0; p < pairs; p++) {
            const uint8_t* p0 = input[2 * p];
            const uint8_t* p1 = 2 * p + 1 < taps ? input[2 * p + 1] : p0; /* weight 0 */
            const __m128i x0 = _mm_loadu_si128((const __m128i*)(p0 + c));
            const __m128i x1 = _mm_loadu_si128((const __m128i*)(p1 + c));
            const int16_t* w = a->weights + p * a->weights_pair_stride + 2 * c;
            acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(dw_pair8(x0, x1, zp, 0),
                                                            _mm256_loadu_si256((const __m256i*)w)));
            acc1 = _mm256_add_epi32(
                acc1, _mm256_madd_epi16(dw_pair8(x0, x1, zp, 1),
                                        _mm256_loadu_si256((const __m256i*)(w + 16))));
        }
        _mm_storeu_si128((__m128i*)(out + c), dw_requant16(acc0, acc1, a->scale + c, lo, hi, yzp));
    }
    for (; c < a->channels; c++) { /* tail: same arithmetic, one channel at a time */
        uint32_t acc = (uint32_t)a->bias[c];
        for (size_t p = 0; p < pairs; p++) {
            const int16_t* w = a->weights + p * a->weights_pair_stride + 2 * c;
            acc += (uint32_t)(((int32_t)input[2 * p][c] - a->x_zp) * (int32_t)w[0]);
            if (2 * p + 1 < taps) {
                acc += (uint32_t)(((int32_t)input[2 * p + 1][c] - a->x_zp) * (int32_t)w[1]);
            }
        }
        out[c] = onnxq_conv_requant1((int32_t)acc, a->scale[c], a->lo, a->hi, a->y_zp);
    }
}
#endif
