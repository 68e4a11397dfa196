/* Requantisation for concat, AVX2: the table's fp32 arithmetic on 8 lanes (multiply, divide,
 * clamp, round half to even), 32 values per step, the table lookup for the tail. */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include "concat/concat_tail.h"
#include "concat/ukernel.h"

static void requant_avx2(size_t n, const uint8_t* x, uint8_t* y,
                         const onnxq_requant_ukernel_params* p, int is_signed) {
    const __m256 xs = _mm256_set1_ps(p->x_scale), ys = _mm256_set1_ps(p->y_scale);
    const __m256 lo = _mm256_set1_ps(p->lo), hi = _mm256_set1_ps(p->hi);
    const __m256i xzp = _mm256_set1_epi32(p->x_zp), yzp = _mm256_set1_epi32(p->y_zp);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const uint8_t* src = x + i;
        uint8_t* dst = y + i;
        __m256i r[4];
        for (int j = 0; j < 4; ++j) {
            __m128i b = _mm_loadl_epi64((const __m128i*)(src + 8 * j));
            __m256i v = is_signed ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b);
            __m256 f = _mm256_mul_ps(xs, _mm256_cvtepi32_ps(_mm256_sub_epi32(v, xzp)));
            f = _mm256_min_ps(_mm256_max_ps(_mm256_div_ps(f, ys), lo), hi);
            r[j] = _mm256_add_epi32(_mm256_cvtps_epi32(f), yzp);
        }
        __m256i w01 = _mm256_packs_epi32(r[0], r[1]), w23 = _mm256_packs_epi32(r[2], r[3]);
        __m256i q = is_signed ? _mm256_packs_epi16(w01, w23) : _mm256_packus_epi16(w01, w23);
        _mm256_storeu_si256((__m256i*)dst, _mm256_permutevar8x32_epi32(q, perm));
    }
    onnxq_requant_tail(i, n, x, y, p);
}

void onnxq_requant_u8_ukernel_32__avx2(size_t n, const uint8_t* x, uint8_t* y,
                                       const onnxq_requant_ukernel_params* p) {
    requant_avx2(n, x, y, p, 0);
}

void onnxq_requant_s8_ukernel_32__avx2(size_t n, const int8_t* x, int8_t* y,
                                       const onnxq_requant_ukernel_params* p) {
    requant_avx2(n, (const uint8_t*)x, (uint8_t*)y, p, 1);
}
#endif
