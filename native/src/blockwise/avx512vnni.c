/* Block-wise 4-bit x int8 per-row matmul of one 16-column panel, AVX-512 VNNI: one 64-byte load
 * per group of 8 values of k (16 columns x 4 k per nibble), nibbles unpacked in registers and
 * multiplied-accumulated by vpdpbusd (unsigned codes x signed activations, int32 sums: exact). */
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
#include <immintrin.h>
#include <string.h>

#include "blockwise/ukernel.h"

static inline __m512i bcast4(const int8_t* a) {
    int32_t v;
    memcpy(&v, a, sizeof v);
    return _mm512_set1_epi32(v);
}

void onnxq_qd8_f32_qb4w_ukernel_1x16c8__avx512vnni(size_t nb, size_t block, const int8_t* qa,
                                                    const int32_t* bsum, float a_scale,
                                                    const uint8_t* w, const float* ws,
                                                    const uint8_t* zp, float* y) {
    const __m512i mask = _mm512_set1_epi8(0x0f);
    const __m512 sa = _mm512_set1_ps(a_scale);
    __m512 acc_y = _mm512_setzero_ps();
    for (size_t b = 0; b < nb; ++b) {
        __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
        for (size_t g = 0; g < block / ONNXQ_QB4W_GROUP; ++g) {
            const __m512i wv = _mm512_loadu_si512((const void*)w);
            lo = _mm512_dpbusd_epi32(lo, _mm512_and_si512(wv, mask), bcast4(qa));
            hi = _mm512_dpbusd_epi32(hi, _mm512_and_si512(_mm512_srli_epi16(wv, 4), mask),
                                     bcast4(qa + 4));
            w += ONNXQ_QB4W_GROUP_BYTES;
            qa += ONNXQ_QB4W_GROUP;
        }
        const __m512i z = zp != NULL
                              ? _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(zp + b * ONNXQ_QB4W_NR)))
                              : _mm512_set1_epi32(8);
        const __m512i acc = _mm512_sub_epi32(_mm512_add_epi32(lo, hi),
                                             _mm512_mullo_epi32(z, _mm512_set1_epi32(bsum[b])));
        const __m512 d = _mm512_mul_ps(sa, _mm512_loadu_ps(ws + b * ONNXQ_QB4W_NR));
        acc_y = _mm512_add_ps(acc_y, _mm512_mul_ps(_mm512_cvtepi32_ps(acc), d));
    }
    _mm512_storeu_ps(y, acc_y);
}
#endif
