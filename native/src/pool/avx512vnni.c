/* Pooling micro-kernels, AVX-512: 64 channels per step for max, 16 for avg / global avg (fp32
 * lanes), masked tails; same order of fp32 operations as the scalar kernels. */
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
#include <immintrin.h>

#include "pool/ukernel.h"

static inline __mmask64 mask64(size_t left) {
    return left >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << left) - 1);
}

static inline __mmask16 mask16(size_t left) {
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

static void max_avx512(size_t channels, size_t ntaps, const uint8_t* const* taps, uint8_t* y,
                       int is_signed) {
    for (size_t c = 0; c < channels; c += 64) {
        const __mmask64 m = mask64(channels - c);
        __m512i acc = _mm512_maskz_loadu_epi8(m, taps[0] + c);
        for (size_t k = 1; k < ntaps; ++k) {
            __m512i v = _mm512_maskz_loadu_epi8(m, taps[k] + c);
            acc = is_signed ? _mm512_max_epi8(acc, v) : _mm512_max_epu8(acc, v);
        }
        _mm512_mask_storeu_epi8(y + c, m, acc);
    }
}

void onnxq_maxpool_u8_ukernel_64__avx512vnni(size_t channels, size_t ntaps,
                                             const uint8_t* const* taps, uint8_t* y) {
    max_avx512(channels, ntaps, taps, y, 0);
}

void onnxq_maxpool_s8_ukernel_64__avx512vnni(size_t channels, size_t ntaps,
                                             const int8_t* const* taps, int8_t* y) {
    max_avx512(channels, ntaps, (const uint8_t* const*)taps, (uint8_t*)y, 1);
}

static inline __m512i load16(const uint8_t* p, __mmask16 m, int is_signed) {
    __m128i v = _mm_maskz_loadu_epi8(m, p);
    return is_signed ? _mm512_cvtepi8_epi32(v) : _mm512_cvtepu8_epi32(v);
}

static void avg_avx512(size_t channels, size_t ntaps, const uint8_t* const* taps, uint8_t* y,
                       const onnxq_avgpool_ukernel_params* p, int is_signed) {
    const __m512 xs = _mm512_set1_ps(p->x_scale), cnt = _mm512_set1_ps(p->count);
    const __m512 ys = _mm512_set1_ps(p->y_scale), yzp = _mm512_set1_ps(p->y_zp);
    const __m512 lo = _mm512_set1_ps(p->lo), hi = _mm512_set1_ps(p->hi);
    const __m512i xzp = _mm512_set1_epi32(p->x_zp);
    for (size_t c = 0; c < channels; c += 16) {
        const __mmask16 m = mask16(channels - c);
        __m512 s = _mm512_setzero_ps();
        for (size_t k = 0; k < ntaps; ++k) {
            __m512i v = _mm512_sub_epi32(load16(taps[k] + c, m, is_signed), xzp);
            s = _mm512_add_ps(s, _mm512_mul_ps(xs, _mm512_cvtepi32_ps(v)));
        }
        __m512 v = _mm512_add_ps(_mm512_div_ps(_mm512_div_ps(s, cnt), ys), yzp);
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        _mm_mask_storeu_epi8(y + c, m, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v)));
    }
}

void onnxq_avgpool_u8_ukernel_16__avx512vnni(size_t channels, size_t ntaps,
                                             const uint8_t* const* taps, uint8_t* y,
                                             const onnxq_avgpool_ukernel_params* p) {
    avg_avx512(channels, ntaps, taps, y, p, 0);
}

void onnxq_avgpool_s8_ukernel_16__avx512vnni(size_t channels, size_t ntaps,
                                             const int8_t* const* taps, int8_t* y,
                                             const onnxq_avgpool_ukernel_params* p) {
    avg_avx512(channels, ntaps, (const uint8_t* const*)taps, (uint8_t*)y, p, 1);
}

static void gavg_avx512(size_t channels, size_t rows, const uint8_t* x, size_t stride, uint8_t* y,
                        const onnxq_gavgpool_ukernel_params* p, int is_signed) {
    const __m512 mul = _mm512_set1_ps(p->multiplier);
    const __m512 lo = _mm512_set1_ps(p->lo), hi = _mm512_set1_ps(p->hi);
    const __m512i bias = _mm512_set1_epi32(p->bias), yzp = _mm512_set1_epi32(p->y_zp);
    for (size_t c = 0; c < channels; c += 16) {
        const __mmask16 m = mask16(channels - c);
        __m512i acc = bias;
        for (size_t r = 0; r < rows; ++r)
            acc = _mm512_add_epi32(acc, load16(x + r * stride + c, m, is_signed));
        __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), mul);
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(v), yzp);
        _mm_mask_storeu_epi8(y + c, m, _mm512_cvtepi32_epi8(q));
    }
}

void onnxq_gavgpool_u8_ukernel_16__avx512vnni(size_t channels, size_t rows, const uint8_t* x,
                                              size_t stride, uint8_t* y,
                                              const onnxq_gavgpool_ukernel_params* p) {
    gavg_avx512(channels, rows, x, stride, y, p, 0);
}

void onnxq_gavgpool_s8_ukernel_16__avx512vnni(size_t channels, size_t rows, const int8_t* x,
                                              size_t stride, int8_t* y,
                                              const onnxq_gavgpool_ukernel_params* p) {
    gavg_avx512(channels, rows, (const uint8_t*)x, stride, (uint8_t*)y, p, 1);
}
#endif
