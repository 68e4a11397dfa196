/* Quantize / dequantize, AVX-512: 64 values per step, masked tail (no scalar tail). */
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
#include <immintrin.h>

#include "common/requant_avx512.h"
#include "quant/ukernel.h"

#define tail_mask onnxq_mask16

/* Up to 16 floats (mask m) -> int32: x / scale, clamp (NaN -> lo), round half to even, + zp. */
static inline __m512i quantize16(const float* x, __mmask16 m, __m512 scale, __m512 lo, __m512 hi,
                                 __m512i zp) {
    const __m512 v = _mm512_div_ps(_mm512_maskz_loadu_ps(m, x), scale);
    return _mm512_add_epi32(onnxq_clamp_round_avx512(v, lo, hi), zp);
}

/* n floats -> n bytes (int8 or uint8 alike: the values are clamped to the type already), 64 per
 * step, masked tail; lo/hi are qmin - zp, qmax - zp. */
static inline void quantize_bytes(size_t n, const float* x, float scale, int32_t zp, float lo,
                                  float hi, void* y) {
    const __m512 vs = _mm512_set1_ps(scale), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    const __m512i vzp = _mm512_set1_epi32(zp);
    uint8_t* out = y;
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (size_t j = 0; j < 64; j += 16)
            _mm512_mask_cvtepi32_storeu_epi8(out + i + j, 0xffff,
                                             quantize16(x + i + j, 0xffff, vs, vlo, vhi, vzp));
    for (; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        _mm512_mask_cvtepi32_storeu_epi8(out + i, m, quantize16(x + i, m, vs, vlo, vhi, vzp));
    }
}

void onnxq_quantize_f32_u8_ukernel_64__avx512vnni(size_t n, const float* x, float scale,
                                                  int32_t zp, uint8_t* y) {
    quantize_bytes(n, x, scale, zp, (float)(0 - zp), (float)(255 - zp), y);
}

void onnxq_quantize_f32_s8_ukernel_64__avx512vnni(size_t n, const float* x, float scale,
                                                  int32_t zp, int8_t* y) {
    quantize_bytes(n, x, scale, zp, (float)(-128 - zp), (float)(127 - zp), y);
}

/* n bytes (int8 when is_signed, else uint8) -> n floats, 16 per step, masked tail. */
static inline void dequantize_bytes(size_t n, const void* x, float scale, int32_t zp,
                                    int is_signed, float* y) {
    const __m512 vs = _mm512_set1_ps(scale);
    const __m512i vzp = _mm512_set1_epi32(zp);
    const uint8_t* in = x;
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        const __m128i b = _mm_maskz_loadu_epi8(m, in + i);
        __m512i q = is_signed ? _mm512_cvtepi8_epi32(b) : _mm512_cvtepu8_epi32(b);
        __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q, vzp)), vs);
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

void onnxq_dequantize_u8_f32_ukernel_64__avx512vnni(size_t n, const uint8_t* x, float scale,
                                                    int32_t zp, float* y) {
    dequantize_bytes(n, x, scale, zp, 0, y);
}

void onnxq_dequantize_s8_f32_ukernel_64__avx512vnni(size_t n, const int8_t* x, float scale,
                                                    int32_t zp, float* y) {
    dequantize_bytes(n, x, scale, zp, 1, y);
}
#endif /* __x86_64__ */
