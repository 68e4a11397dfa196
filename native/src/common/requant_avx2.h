/* AVX2 requantisation steps shared by all families (include after the file's
 * #pragma GCC target("avx2,...")). Bit-exact with onnxq_clamp_round / onnxq_requant_one:
 * maxps(v, lo) gives lo for NaN, cvtps2dq rounds half to even under the default MXCSR. */
#ifndef ONNXQ_REQUANT_AVX2_H
#define ONNXQ_REQUANT_AVX2_H

#include <immintrin.h>
#include <stddef.h>
#include <string.h>

/* round_half_even(clamp(v, lo, hi)) as int32 (lo, hi integral). */
static inline __m256i onnxq_clamp_round_avx2(__m256 v, __m256 lo, __m256 hi) {
    return _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, lo), hi));
}

/* MLAS requantisation of 8 int32: clamp_round((float)acc * scale, lo, hi) + zp. */
static inline __m256i onnxq_requant_avx2(__m256i acc, __m256 scale, __m256 lo, __m256 hi,
                                         __m256i zp) {
    const __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), scale);
    return _mm256_add_epi32(onnxq_clamp_round_avx2(v, lo, hi), zp);
}

/* Stores the low byte of each of the first cnt (<= 8) int32 lanes (values already in u8 or s8
 * range). */
static inline void onnxq_store_bytes_avx2(__m256i q, void* dst, size_t cnt) {
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    const __m128i b =
        _mm_shuffle_epi8(w, _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, -1, -1, -1, -1, -1, -1, -1, -1));
    if (cnt >= 8) {
        _mm_storel_epi64((__m128i*)dst, b);
    } else {
        unsigned char tmp[16];
        _mm_storeu_si128((__m128i*)tmp, b);
        memcpy(dst, tmp, cnt);
    }
}

#endif /* ONNXQ_REQUANT_AVX2_H */
