/* Quantize / dequantize, AVX2: 32 values per step, the scalar steps for the tail. */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include "common/requant_avx2.h"
#include "quant/quant_tail.h"
#include "quant/ukernel.h"

/* 8 floats -> 8 int32: x / scale, clamp (NaN -> lo), round half to even, + zp. */
static inline __m256i quantize8(const float* x, __m256 scale, __m256 lo, __m256 hi, __m256i zp) {
    const __m256 v = _mm256_div_ps(_mm256_loadu_ps(x), scale);
    return _mm256_add_epi32(onnxq_clamp_round_avx2(v, lo, hi), zp);
}

/* Undo the lane interleaving of packs_epi32 + packs/packus_epi16 over 4 vectors. */
static inline __m256i pack_order(__m256i v) {
    return _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* n floats -> n bytes, 32 per step: int8 (is_signed, saturated by packs) or uint8 (packus);
 * lo/hi are qmin - zp, qmax - zp. The scalar steps for the tail, stored as the same bytes. */
static inline void quantize_bytes(size_t n, const float* x, float scale, int32_t zp, float lo,
                                  float hi, int is_signed, uint8_t* y) {
    const __m256 vs = _mm256_set1_ps(scale), vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    const __m256i vzp = _mm256_set1_epi32(zp);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i a = quantize8(x + i, vs, vlo, vhi, vzp), b = quantize8(x + i + 8, vs, vlo, vhi, vzp);
        __m256i c = quantize8(x + i + 16, vs, vlo, vhi, vzp);
        __m256i d = quantize8(x + i + 24, vs, vlo, vhi, vzp);
        __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
        __m256i q = is_signed ? _mm256_packs_epi16(ab, cd) : _mm256_packus_epi16(ab, cd);
        _mm256_storeu_si256((__m256i*)(y + i), pack_order(q));
    }
    onnxq_quantize_tail(i, n, x, scale, zp, lo, hi, y);
}

void onnxq_quantize_f32_u8_ukernel_32__avx2(size_t n, const float* x, float scale, int32_t zp,
                                            uint8_t* y) {
    quantize_bytes(n, x, scale, zp, (float)(0 - zp), (float)(255 - zp), 0, y);
}

void onnxq_quantize_f32_s8_ukernel_32__avx2(size_t n, const float* x, float scale, int32_t zp,
                                            int8_t* y) {
    quantize_bytes(n, x, scale, zp, (float)(-128 - zp), (float)(127 - zp), 1, (uint8_t*)y);
}

static inline void dequantize8(__m256i q, __m256i zp, __m256 scale, float* y) {
    _mm256_storeu_ps(y, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, zp)), scale));
}

/* n bytes (int8 when is_signed, else uint8) -> n floats, 32 per step, scalar tail. */
static inline void dequantize_bytes(size_t n, const uint8_t* x, float scale, int32_t zp,
                                    int is_signed, float* y) {
    const __m256 vs = _mm256_set1_ps(scale);
    const __m256i vzp = _mm256_set1_epi32(zp);
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (size_t j = 0; j < 32; j += 8) {
            __m128i q = _mm_loadl_epi64((const __m128i*)(x + i + j));
            dequantize8(is_signed ? _mm256_cvtepi8_epi32(q) : _mm256_cvtepu8_epi32(q), vzp, vs,
                        y + i + j);
        }
    onnxq_dequantize_tail(i, n, x, scale, zp, is_signed, y);
}

void onnxq_dequantize_u8_f32_ukernel_32__avx2(size_t n, const uint8_t* x, float scale,
                                              int32_t zp, float* y) {
    dequantize_bytes(n, x, scale, zp, 0, y);
}

void onnxq_dequantize_s8_f32_ukernel_32__avx2(size_t n, const int8_t* x, float scale,
                                              int32_t zp, float* y) {
    dequantize_bytes(n, (const uint8_t*)x, scale, zp, 1, y);
}
#endif /* __x86_64__ */
