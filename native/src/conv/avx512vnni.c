/* AVX-512 VNNI depthwise conv: 16 channels per zmm, taps in pairs summed exactly by vpdpwssd on
 * int16 (x - zp, w) pairs; channel tails use masked loads/stores, never a read past the row. */
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
#include <immintrin.h>

#include "conv_internal.h"

static inline __m512i dw_pair16(const uint8_t* p0, const uint8_t* p1, __mmask16 m, __m512i zp) {
    const __m128i x0 = _mm_maskz_loadu_epi8(m, p0);
    const __m128i x1 = _mm_maskz_loadu_epi8(m, p1);
    const __m256i il = _mm256_set_m128i(_mm_unpackhi_epi8(x0, x1), _mm_unpacklo_epi8(x0, x1));
    return _mm512_sub_epi16(_mm512_cvtepu8_epi16(il), zp);
}

void onnxq_dwconv_u8s8_rq_ukernel_c16__avx512vnni(const onnxq_dw_args* a,
                                                 const uint8_t* const* input, uint8_t* out) {
    const size_t taps = a->taps;
    const size_t pairs = (taps + 1) / 2;
    const __m512i zp = _mm512_set1_epi16((short)a->x_zp);
    const __m512 lo = _mm512_set1_ps(a->lo);
    const __m512 hi = _mm512_set1_ps(a->hi);
    const __m512i yzp = _mm512_set1_epi32(a->y_zp);
    for (size_t c = 0; c < a->channels; c += 16) {
        const size_t left = a->channels - c;
        const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        __m512i acc = _mm512_maskz_loadu_epi32(m, a->bias + c);
        for (size_t p = 0; p < pairs; p++) {
            const uint8_t* p0 = input[2 * p] + c;
            const uint8_t* p1 = 2 * p + 1 < taps ? input[2 * p + 1] + c : p0; /* weight 0 */
            /* weights are padded to a multiple of 32 channels: the full load stays inside */
            const __m512i w =
                _mm512_loadu_si512((const void*)(a->weights + p * a->weights_pair_stride + 2 * c));
            acc = _mm512_dpwssd_epi32(acc, dw_pair16(p0, p1, m, zp), w);
        }
        __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), _mm512_maskz_loadu_ps(m, a->scale + c));
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(v), yzp);
        _mm_mask_storeu_epi8(out + c, m, _mm512_cvtusepi32_epi8(q));
    }
}
#endif
