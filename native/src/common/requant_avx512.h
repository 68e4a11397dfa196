/* AVX-512 requantisation steps shared by all families (include after the file's
 * #pragma GCC target("avx512f,avx512bw,...")). Bit-exact with onnxq_clamp_round /
 * onnxq_requant_one (maxps NaN -> lo, cvtps2dq rounds half to even). */
#ifndef ONNXQ_REQUANT_AVX512_H
#define ONNXQ_REQUANT_AVX512_H

#include <immintrin.h>
#include <stddef.h>

/* Mask of the first cnt (<= 16) lanes. */
static inline __mmask16 onnxq_mask16(size_t cnt) {
    return cnt >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << cnt) - 1u);
}

/* round_half_even(clamp(v, lo, hi)) as int32 (lo, hi integral). */
static inline __m512i onnxq_clamp_round_avx512(__m512 v, __m512 lo, __m512 hi) {
    return _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(v, lo), hi));
}

/* MLAS requantisation of 16 int32: clamp_round((float)acc * scale, lo, hi) + zp. */
static inline __m512i onnxq_requant_avx512(__m512i acc, __m512 scale, __m512 lo, __m512 hi,
                                           __m512i zp) {
    const __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), scale);
    return _mm512_add_epi32(onnxq_clamp_round_avx512(v, lo, hi), zp);
}

/* Stores the low byte of the lanes in mask m (values already in u8 or s8 range). */
static inline void onnxq_store_bytes_avx512(__m512i q, void* dst, __mmask16 m) {
    _mm512_mask_cvtepi32_storeu_epi8(dst, m, q);
}

#endif /* ONNXQ_REQUANT_AVX512_H */
