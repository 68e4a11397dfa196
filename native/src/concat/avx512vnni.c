/* Requantisation for concat, AVX-512: the table's fp32 arithmetic on 16 lanes, masked tail. */
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
#include <immintrin.h>

#include "concat/ukernel.h"

static void requant_avx512(size_t n, const uint8_t* x, uint8_t* y,
                           const onnxq_requant_ukernel_params* p, int is_signed) {
    const __m512 xs = _mm512_set1_ps(p->x_scale), ys = _mm512_set1_ps(p->y_scale);
    const __m512 lo = _mm512_set1_ps(p->lo), hi = _mm512_set1_ps(p->hi);
    const __m512i xzp = _mm512_set1_epi32(p->x_zp), yzp = _mm512_set1_epi32(p->y_zp);
    for (size_t i = 0; i < n; i += 16) {
        const size_t left = n - i;
        const __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
        __m128i b = _mm_maskz_loadu_epi8(m, x + i);
        __m512i v = is_signed ? _mm512_cvtepi8_epi32(b) : _mm512_cvtepu8_epi32(b);
        __m512 f = _mm512_mul_ps(xs, _mm512_cvtepi32_ps(_mm512_sub_epi32(v, xzp)));
        f = _mm512_min_ps(_mm512_max_ps(_mm512_div_ps(f, ys), lo), hi);
        __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(f), yzp);
        _mm_mask_storeu_epi8(y + i, m, _mm512_cvtepi32_epi8(q));
    }
}

void onnxq_requant_u8_ukernel_16__avx512vnni(size_t n, const uint8_t* x, uint8_t* y,
                                             const onnxq_requant_ukernel_params* p) {
    requant_avx512(n, x, y, p, 0);
}

void onnxq_requant_s8_ukernel_16__avx512vnni(size_t n, const int8_t* x, int8_t* y,
                                             const onnxq_requant_ukernel_params* p) {
    requant_avx512(n, (const uint8_t*)x, (uint8_t*)y, p, 1);
}
#endif
