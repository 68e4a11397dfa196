/* Quantized add, AVX-512: 16 values per vector, masked loads/stores for the tail. */
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
#include <immintrin.h>

#include "eltwise/ukernel.h"

static inline __mmask16 tail_mask(size_t left) {
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

static inline __m512i widen16(const void* p, __mmask16 m, int is_signed) {
    __m128i v = _mm_maskz_loadu_epi8(m, p);
    return is_signed ? _mm512_cvtepi8_epi32(v) : _mm512_cvtepu8_epi32(v);
}

static void qadd_avx512(size_t n, const void* a, const void* b, void* y,
                        const onnxq_qadd_ukernel_params* p, int is_signed) {
    const __m512 ra = _mm512_set1_ps(p->ra), rb = _mm512_set1_ps(p->rb);
    const __m512 fixed = _mm512_set1_ps(p->fixed), lo = _mm512_set1_ps(p->lo);
    const __m512 hi = _mm512_set1_ps(p->hi);
    const uint8_t* pa = (const uint8_t*)a;
    const uint8_t* pb = (const uint8_t*)b;
    uint8_t* py = (uint8_t*)y;
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        __m512 t = fixed;
        if (pb != NULL) t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(widen16(pb + i, m, is_signed)), rb, t);
        __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(widen16(pa + i, m, is_signed)), ra, t);
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        __m512i q = _mm512_cvtps_epi32(v);
        _mm_mask_storeu_epi8(py + i, m, _mm512_cvtepi32_epi8(q));
    }
}

void onnxq_qadd_u8_ukernel_16__avx512vnni(size_t n, const uint8_t* a, const uint8_t* b, uint8_t* y,
                                          const onnxq_qadd_ukernel_params* p) {
    qadd_avx512(n, a, b, y, p, 0);
}

void onnxq_qadd_s8_ukernel_16__avx512vnni(size_t n, const int8_t* a, const int8_t* b, int8_t* y,
                                          const onnxq_qadd_ukernel_params* p) {
    qadd_avx512(n, a, b, y, p, 1);
}
#endif
