/* AVX-VNNI (VEX vpdpbusd on ymm) depthwise row kernels: quad rows built with SSE unpacks, then
 * one exact u8 x s8 4-way dot product per kernel row and 8 channels (see conv/ukernel.h). */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma,avxvnni")
#include <immintrin.h>
#include <string.h>

#include "conv/ukernel.h"
#include "onnxq_kernels.h" /* generated declarations */

/* 16 channels of one position, zeros past `left` channels, without reading past them. */
static inline __m128i load16(const uint8_t* p, size_t left) {
    if (left >= 16) return _mm_loadu_si128((const __m128i*)p);
    uint8_t tmp[16] = {0};
    memcpy(tmp, p, left);
    return _mm_loadu_si128((const __m128i*)tmp);
}

void onnxq_dwrowpack_u8_ukernel_c16__avxvnni(size_t channels, size_t cpad,
                                            const uint8_t* const* src, size_t count, uint8_t* q) {
    for (size_t pos = 0; pos < count; pos++, q += 4 * cpad) {
        const uint8_t* const* s = src + 4 * pos;
        for (size_t c = 0; c < cpad; c += ONNXQ_DWROW_CHANNELS) {
            const size_t left = channels > c ? channels - c : 0;
            const __m128i p0 = load16(s[0] + c, left), p1 = load16(s[1] + c, left);
            const __m128i p2 = load16(s[2] + c, left), p3 = load16(s[3] + c, left);
            const __m128i a_lo = _mm_unpacklo_epi8(p0, p1), a_hi = _mm_unpackhi_epi8(p0, p1);
            const __m128i b_lo = _mm_unpacklo_epi8(p2, p3), b_hi = _mm_unpackhi_epi8(p2, p3);
            uint8_t* d = q + 4 * c;
            _mm_storeu_si128((__m128i*)d, _mm_unpacklo_epi16(a_lo, b_lo));        /* c0-3 */
            _mm_storeu_si128((__m128i*)(d + 16), _mm_unpackhi_epi16(a_lo, b_lo)); /* c4-7 */
            _mm_storeu_si128((__m128i*)(d + 32), _mm_unpacklo_epi16(a_hi, b_hi)); /* c8-11 */
            _mm_storeu_si128((__m128i*)(d + 48), _mm_unpackhi_epi16(a_hi, b_hi)); /* c12-15 */
        }
    }
}

/* Requantises 8 channels into the low 8 bytes. */
static inline __m128i requant8(__m256i acc, const float* scale, __m256 lo, __m256 hi,
                               __m256i yzp) {
    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), _mm256_loadu_ps(scale));
    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    const __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(v), yzp);
    const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    return _mm_packus_epi16(w16, w16);
}

/* nb (<= 4) blocks of 8 channels of one pixel; `store` bytes of the last block are written. */
static inline __attribute__((always_inline)) void dwrow_blocks(const onnxq_dwrow_args* a,
                                                               const uint8_t* const* qrows,
                                                               size_t pos, size_t c, size_t nb,
                                                               size_t store, uint8_t* out) {
    const __m256 lo = _mm256_set1_ps(a->lo);
    const __m256 hi = _mm256_set1_ps(a->hi);
    const __m256i yzp = _mm256_set1_epi32(a->y_zp);
    __m256i acc[4];
#pragma GCC unroll 4
    for (size_t b = 0; b < nb; b++) acc[b] = _mm256_loadu_si256((const __m256i*)(a->bias + c + 8 * b));
    for (size_t i = 0; i < a->kernel_h; i++) {
        const uint8_t* x = qrows[i] + 4 * (pos * a->cpad + c);
        const int8_t* w = a->weights + 4 * (i * a->cpad + c);
#pragma GCC unroll 4
        for (size_t b = 0; b < nb; b++) {
            acc[b] = _mm256_dpbusd_avx_epi32(acc[b], _mm256_loadu_si256((const __m256i*)(x + 32 * b)),
                                             _mm256_loadu_si256((const __m256i*)(w + 32 * b)));
        }
    }
#pragma GCC unroll 4
    for (size_t b = 0; b < nb; b++) {
        const __m128i q = requant8(acc[b], a->scale + c + 8 * b, lo, hi, yzp);
        if (b + 1 < nb || store == 8) {
            _mm_storel_epi64((__m128i*)(out + c + 8 * b), q);
        } else {
            uint8_t tmp[16];
            _mm_storeu_si128((__m128i*)tmp, q);
            memcpy(out + c + 8 * b, tmp, store);
        }
    }
}

void onnxq_dwrow_u8s8_rq_ukernel_c8__avxvnni(const onnxq_dwrow_args* a,
                                            const uint8_t* const* qrows, size_t count,
                                            uint8_t* out) {
    const size_t nb_all = (a->channels + 7) / 8;
    const size_t tail = a->channels - (nb_all - 1) * 8;
    for (size_t pos = 0; pos < count; pos++, out += a->channels) {
        size_t c = 0, nb = nb_all;
        for (; nb > 4; nb -= 4, c += 32) dwrow_blocks(a, qrows, pos, c, 4, 8, out);
        switch (nb) {
            case 1: dwrow_blocks(a, qrows, pos, c, 1, tail, out); break;
            case 2: dwrow_blocks(a, qrows, pos, c, 2, tail, out); break;
            case 3: dwrow_blocks(a, qrows, pos, c, 3, tail, out); break;
            default: dwrow_blocks(a, qrows, pos, c, 4, tail, out); break;
        }
    }
}
#endif
