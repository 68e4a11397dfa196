/* Pooling micro-kernels, AVX2: 32 channels per step for max, 8 for avg / global avg (fp32 lanes),
 * in the same order of fp32 operations as the scalar kernels; tails through stack buffers. */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#include <string.h>

#include "pool/pool_tail.h"
#include "pool/ukernel.h"

static void max_avx2(size_t channels, size_t ntaps, const uint8_t* const* taps, uint8_t* y,
                     int is_signed) {
    size_t c = 0;
    for (; c + 32 <= channels; c += 32) {
        __m256i m = _mm256_loadu_si256((const __m256i*)(taps[0] + c));
        for (size_t k = 1; k < ntaps; ++k) {
            __m256i v = _mm256_loadu_si256((const __m256i*)(taps[k] + c));
            m = is_signed ? _mm256_max_epi8(m, v) : _mm256_max_epu8(m, v);
        }
        _mm256_storeu_si256((__m256i*)(y + c), m);
    }
    for (; c + 16 <= channels; c += 16) {
        __m128i m = _mm_loadu_si128((const __m128i*)(taps[0] + c));
        for (size_t k = 1; k < ntaps; ++k) {
            __m128i v = _mm_loadu_si128((const __m128i*)(taps[k] + c));
            m = is_signed ? _mm_max_epi8(m, v) : _mm_max_epu8(m, v);
        }
        _mm_storeu_si128((__m128i*)(y + c), m);
    }
    onnxq_maxpool_tail(c, channels, ntaps, taps, y, is_signed);
}

void onnxq_maxpool_u8_ukernel_32__avx2(size_t channels, size_t ntaps, const uint8_t* const* taps,
                                       uint8_t* y) {
    max_avx2(channels, ntaps, taps, y, 0);
}

void onnxq_maxpool_s8_ukernel_32__avx2(size_t channels, size_t ntaps, const int8_t* const* taps,
                                       int8_t* y) {
    max_avx2(channels, ntaps, (const uint8_t* const*)taps, (uint8_t*)y, 1);
}

static inline __m256i load8(const uint8_t* p, size_t len, int is_signed) {
    __m128i v;
    if (len >= 8) {
        v = _mm_loadl_epi64((const __m128i*)p);
    } else {
        uint8_t t[8] = {0};
        memcpy(t, p, len);
        v = _mm_loadl_epi64((const __m128i*)t);
    }
    return is_signed ? _mm256_cvtepi8_epi32(v) : _mm256_cvtepu8_epi32(v);
}

static inline void store8(uint8_t* y, __m256i q, size_t len) {
    __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    /* values are inside the type range: keep the low byte of each int16 */
    __m128i b = _mm_shuffle_epi8(w, _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, -1, -1, -1, -1, -1,
                                                  -1, -1, -1));
    uint8_t t[16];
    _mm_storeu_si128((__m128i*)t, b);
    memcpy(y, t, len < 8 ? len : 8);
}

static void avg_avx2(size_t channels, size_t ntaps, const uint8_t* const* taps, uint8_t* y,
                     const onnxq_avgpool_ukernel_params* p, int is_signed) {
    const __m256 xs = _mm256_set1_ps(p->x_scale), cnt = _mm256_set1_ps(p->count);
    const __m256 ys = _mm256_set1_ps(p->y_scale), yzp = _mm256_set1_ps(p->y_zp);
    const __m256 lo = _mm256_set1_ps(p->lo), hi = _mm256_set1_ps(p->hi);
    const __m256i xzp = _mm256_set1_epi32(p->x_zp);
    for (size_t c = 0; c < channels; c += 8) {
        const size_t len = channels - c < 8 ? channels - c : 8;
        __m256 s = _mm256_setzero_ps();
        for (size_t k = 0; k < ntaps; ++k) {
            __m256i v = _mm256_sub_epi32(load8(taps[k] + c, len, is_signed), xzp);
            s = _mm256_add_ps(s, _mm256_mul_ps(xs, _mm256_cvtepi32_ps(v)));
        }
        __m256 v = _mm256_add_ps(_mm256_div_ps(_mm256_div_ps(s, cnt), ys), yzp);
        v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
        store8(y + c, _mm256_cvtps_epi32(v), len);
    }
}

void onnxq_avgpool_u8_ukernel_8__avx2(size_t channels, size_t ntaps, const uint8_t* const* taps,
                                      uint8_t* y, const onnxq_avgpool_ukernel_params* p) {
    avg_avx2(channels, ntaps, taps, y, p, 0);
}

void onnxq_avgpool_s8_ukernel_8__avx2(size_t channels, size_t ntaps, const int8_t* const* taps,
                                      int8_t* y, const onnxq_avgpool_ukernel_params* p) {
    avg_avx2(channels, ntaps, (const uint8_t* const*)taps, (uint8_t*)y, p, 1);
}

static void gavg_avx2(size_t channels, size_t rows, const uint8_t* x, size_t stride, uint8_t* y,
                      const onnxq_gavgpool_ukernel_params* p, int is_signed) {
    const __m256 m = _mm256_set1_ps(p->multiplier);
    const __m256 lo = _mm256_set1_ps(p->lo), hi = _mm256_set1_ps(p->hi);
    const __m256i bias = _mm256_set1_epi32(p->bias), yzp = _mm256_set1_epi32(p->y_zp);
    for (size_t c = 0; c < channels; c += 8) {
        const size_t len = channels - c < 8 ? channels - c : 8;
        __m256i acc = bias;
        for (size_t r = 0; r < rows; ++r)
            acc = _mm256_add_epi32(acc, load8(x + r * stride + c, len, is_signed));
        __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), m);
        v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
        store8(y + c, _mm256_add_epi32(_mm256_cvtps_epi32(v), yzp), len);
    }
}

void onnxq_gavgpool_u8_ukernel_8__avx2(size_t channels, size_t rows, const uint8_t* x,
                                       size_t stride, uint8_t* y,
                                       const onnxq_gavgpool_ukernel_params* p) {
    gavg_avx2(channels, rows, x, stride, y, p, 0);
}

void onnxq_gavgpool_s8_ukernel_8__avx2(size_t channels, size_t rows, const int8_t* x,
                                       size_t stride, int8_t* y,
                                       const onnxq_gavgpool_ukernel_params* p) {
    gavg_avx2(channels, rows, (const uint8_t*)x, stride, (uint8_t*)y, p, 1);
}
#endif
