/* Block-wise 4-bit x int8 per-row matmul of one 16-column panel, AVX2.
 *
 * Per group of 8 values of k: two 32-byte loads (columns 0-7 and 8-15, 4 k per nibble), nibbles
 * unpacked in registers (vpand / vpsrlw + vpand) and multiplied with 4 broadcast activation bytes
 * by vpmaddubsw (unsigned codes 0..15 x signed activations): a pair is at most 2 * 15 * 128 = 3840
 * in magnitude, so vpmaddubsw never saturates, and 8 of them (4 groups, 32 values of k) summed in
 * int16 stay within 30720 < 32767; then vpmaddwd by 1 widens to int32 per column.
 */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#include <string.h>

#include "blockwise/ukernel.h"

static inline __m256i bcast4(const int8_t* a) {
    int32_t v;
    memcpy(&v, a, sizeof v);
    return _mm256_set1_epi32(v);
}

static inline __m256i zero_points(const uint8_t* zp) {
    if (zp == NULL) return _mm256_set1_epi32(8);
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)zp));
}

void onnxq_qd8_f32_qb4w_ukernel_1x16c8__avx2(size_t nb, size_t block, const int8_t* qa,
                                              const int32_t* bsum, float a_scale,
                                              const uint8_t* w, const float* ws,
                                              const uint8_t* zp, float* y) {
    const __m256i mask = _mm256_set1_epi8(0x0f);
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256 sa = _mm256_set1_ps(a_scale);
    __m256 y0 = _mm256_setzero_ps(), y1 = _mm256_setzero_ps();
    for (size_t b = 0; b < nb; ++b) {
        __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
        for (size_t k = 0; k < block; k += 32) {
            __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
            for (int g = 0; g < 4; ++g) {
                const __m256i w0 = _mm256_loadu_si256((const __m256i*)w);
                const __m256i w1 = _mm256_loadu_si256((const __m256i*)(w + 32));
                const __m256i alo = bcast4(qa), ahi = bcast4(qa + 4);
                s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(_mm256_and_si256(w0, mask), alo));
                s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(_mm256_and_si256(w1, mask), alo));
                s0 = _mm256_add_epi16(
                    s0, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(w0, 4), mask), ahi));
                s1 = _mm256_add_epi16(
                    s1, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(w1, 4), mask), ahi));
                w += ONNXQ_QB4W_GROUP_BYTES;
                qa += ONNXQ_QB4W_GROUP;
            }
            acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(s0, ones));
            acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(s1, ones));
        }
        const __m256i bs = _mm256_set1_epi32(bsum[b]);
        const uint8_t* zb = zp != NULL ? zp + b * ONNXQ_QB4W_NR : NULL;
        acc0 = _mm256_sub_epi32(acc0, _mm256_mullo_epi32(zero_points(zb), bs));
        acc1 = _mm256_sub_epi32(acc1, _mm256_mullo_epi32(zero_points(zb != NULL ? zb + 8 : NULL), bs));
        const __m256 d0 = _mm256_mul_ps(sa, _mm256_loadu_ps(ws + b * ONNXQ_QB4W_NR));
        const __m256 d1 = _mm256_mul_ps(sa, _mm256_loadu_ps(ws + b * ONNXQ_QB4W_NR + 8));
        y0 = _mm256_add_ps(y0, _mm256_mul_ps(_mm256_cvtepi32_ps(acc0), d0));
        y1 = _mm256_add_ps(y1, _mm256_mul_ps(_mm256_cvtepi32_ps(acc1), d1));
    }
    _mm256_storeu_ps(y, y0);
    _mm256_storeu_ps(y + 8, y1);
}
#endif
