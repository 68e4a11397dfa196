/* The AVX2 u8s8 GEMM's preparation of A rows and B panels (see avx2.c for the scheme): counting
 * and splitting off the bytes of 128 or more of a row, the sparse fix-up they add to a step's
 * starting accumulators, and widening rows of A and panels of B to int16 pairs. */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include "gemm/avx2_prep.h"

/* Number of bytes of 128 or more among the k bytes of row a, counting stops past cap. */
size_t onnxq_avx2_row_high_count(const uint8_t* a, size_t k, size_t cap) {
    size_t cnt = 0, t = 0;
    for (; t + 32 <= k && cnt <= cap; t += 32)
        cnt += (size_t)__builtin_popcount((unsigned)_mm256_movemask_epi8(_mm256_loadu_si256((const __m256i*)(a + t))));
    /* 1x1 convs have k of 16, 24, ...: the tail in 16 and 8 bytes, not byte by byte */
    if (t + 16 <= k) {
        cnt += (size_t)__builtin_popcount((unsigned)_mm_movemask_epi8(_mm_loadu_si128((const __m128i*)(a + t))));
        t += 16;
    }
    if (t + 8 <= k) {
        cnt += (size_t)__builtin_popcount((unsigned)_mm_movemask_epi8(_mm_loadl_epi64((const __m128i*)(a + t))));
        t += 8;
    }
    for (; t < k; ++t) cnt += a[t] >> 7;
    return cnt;
}

/* Copies row a (k bytes) with the top bit of each byte cleared to dst, and appends the positions
 * of the bytes of 128 or more to pos (the caller counted them: at most fix_cap). */
size_t onnxq_avx2_split_row(const uint8_t* a, size_t k, uint8_t* dst, uint32_t* pos) {
    const __m256i low7 = _mm256_set1_epi8(0x7f);
    size_t cnt = 0, t = 0;
    for (; t + 32 <= k; t += 32) {
        const __m256i v = _mm256_loadu_si256((const __m256i*)(a + t));
        _mm256_storeu_si256((__m256i*)(dst + t), _mm256_and_si256(v, low7));
        for (unsigned bits = (unsigned)_mm256_movemask_epi8(v); bits != 0; bits &= bits - 1)
            pos[cnt++] = (uint32_t)(t + (size_t)__builtin_ctz(bits));
    }
    for (; t < k; ++t) {
        dst[t] = a[t] & 0x7fu;
        if (a[t] & 0x80u) pos[cnt++] = (uint32_t)t;
    }
    return cnt;
}

/* init[r * 16 + c] = corr[c] + sum over the positions p of row r of 128 * B[p, c], for the 16
 * columns of packed block b (wrapping int32, like the accumulators); off[r] .. off[r + 1] are row
 * r's positions in pos. */
void onnxq_avx2_fixup_init(const int32_t* corr, const int8_t* b, const uint32_t* pos,
                       const uint32_t* off, size_t rows, int32_t* init) {
    const __m256i c0 = _mm256_loadu_si256((const __m256i*)corr);
    const __m256i c1 = _mm256_loadu_si256((const __m256i*)(corr + 8));
    for (size_t r = 0; r < rows; ++r) {
        __m256i s0 = c0, s1 = c1;
        for (uint32_t e = off[r]; e < off[r + 1]; ++e) {
            const size_t p = pos[e];
            const int8_t* g = b + (p / 4) * 64; /* column c's 4 bytes at 4c: byte p % 4 is B[p, c] */
            /* byte p % 4 of each lane to the top, sign-extended back down, times 128 */
            const __m128i up = _mm_cvtsi32_si128((int)(24 - 8 * (p % 4)));
            const __m256i v0 = _mm256_sll_epi32(_mm256_loadu_si256((const __m256i*)g), up);
            const __m256i v1 = _mm256_sll_epi32(_mm256_loadu_si256((const __m256i*)(g + 32)), up);
            s0 = _mm256_add_epi32(s0, _mm256_slli_epi32(_mm256_srai_epi32(v0, 24), 7));
            s1 = _mm256_add_epi32(s1, _mm256_slli_epi32(_mm256_srai_epi32(v1, 24), 7));
        }
        _mm256_store_si256((__m256i*)(init + r * 16), s0);
        _mm256_store_si256((__m256i*)(init + r * 16 + 8), s1);
    }
}

/* Widens row a (k bytes, never read past k) into np int16 pairs at dst, zeros past k. */
void onnxq_avx2_widen_a_row(const uint8_t* a, size_t k, size_t np, int32_t* dst) {
    size_t t = 0;
    for (; t + 16 <= k; t += 16) {
        const __m128i v = _mm_loadu_si128((const __m128i*)(a + t));
        _mm256_storeu_si256((__m256i*)(dst + t / 2), _mm256_cvtepu8_epi16(v));
    }
    if (t + 8 <= k) {
        const __m128i v = _mm_loadl_epi64((const __m128i*)(a + t));
        _mm_storeu_si128((__m128i*)(dst + t / 2), _mm_cvtepu8_epi16(v));
        t += 8;
    }
    int16_t* d16 = (int16_t*)(dst + t / 2);
    for (size_t u = t; u < 2 * np; ++u) d16[u - t] = u < k ? (int16_t)a[u] : 0;
}

/* Widens the groups [0, ng) of packed block b (64 bytes per 4-deep group: column c at bytes
 * 4c .. 4c+3) into 2 * ng pairs of the B panel. Within each 128-bit lane of 4 columns, vpshufb
 * gathers the (k0, k1) bytes of the columns, then their (k2, k3) bytes; vpermq puts the (k0, k1)
 * halves of both lanes low and the (k2, k3) halves high; vpmovsxbw widens each half. */
void onnxq_avx2_widen_b_panel(const int8_t* b, size_t ng, int16_t* dst) {
    const __m256i gather = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15,
                                            0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
    for (size_t g = 0; g < ng; ++g) {
        int16_t* d = dst + g * 64;
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
            const __m256i v = _mm256_loadu_si256((const __m256i*)(b + g * 64 + h * 32));
            const __m256i s = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(v, gather), 0xd8);
            _mm256_store_si256((__m256i*)(d + h * 16),
                               _mm256_cvtepi8_epi16(_mm256_castsi256_si128(s)));
            _mm256_store_si256((__m256i*)(d + 32 + h * 16),
                               _mm256_cvtepi8_epi16(_mm256_extracti128_si256(s, 1)));
        }
    }
}

#endif
