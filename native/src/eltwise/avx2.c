/* Quantized add, AVX2 + FMA: 32 values per step (vfmadd, like onnxruntime's AVX2 kernel), the
 * scalar step (fmaf) for the tail. */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include "eltwise/eltwise_tail.h"
#include "eltwise/ukernel.h"

/* 8 values (as int32) -> requantised int32. */
static inline __m256i step8(__m256i a, const __m256i* b, __m256 ra, __m256 rb, __m256 fixed,
                            __m256 lo, __m256 hi) {
    __m256 t = b != NULL ? _mm256_fmadd_ps(_mm256_cvtepi32_ps(*b), rb, fixed) : fixed;
    __m256 v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a), ra, t);
    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    return _mm256_cvtps_epi32(v);
}

/* 32 int32 (in four vectors) -> 32 bytes in order; values already inside the type range. */
static inline __m256i pack32(__m256i v0, __m256i v1, __m256i v2, __m256i v3, int is_signed) {
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    __m256i w01 = _mm256_packs_epi32(v0, v1), w23 = _mm256_packs_epi32(v2, v3);
    __m256i b = is_signed ? _mm256_packs_epi16(w01, w23) : _mm256_packus_epi16(w01, w23);
    return _mm256_permutevar8x32_epi32(b, perm);
}

static inline __m256i widen8(const void* p, int is_signed) {
    __m128i v = _mm_loadl_epi64((const __m128i*)p);
    return is_signed ? _mm256_cvtepi8_epi32(v) : _mm256_cvtepu8_epi32(v);
}

static void qadd_avx2(size_t n, const void* a, const void* b, void* y,
                      const onnxq_qadd_ukernel_params* p, int is_signed) {
    const __m256 ra = _mm256_set1_ps(p->ra), rb = _mm256_set1_ps(p->rb);
    const __m256 fixed = _mm256_set1_ps(p->fixed), lo = _mm256_set1_ps(p->lo);
    const __m256 hi = _mm256_set1_ps(p->hi);
    const uint8_t* pa = (const uint8_t*)a;
    const uint8_t* pb = (const uint8_t*)b;
    uint8_t* py = (uint8_t*)y;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const uint8_t* xa = pa + i;
        const uint8_t* xb = pb != NULL ? pb + i : NULL;
        uint8_t* out = py + i;
        __m256i r[4];
        for (int j = 0; j < 4; ++j) {
            __m256i va = widen8(xa + 8 * j, is_signed);
            if (xb != NULL) {
                __m256i vb = widen8(xb + 8 * j, is_signed);
                r[j] = step8(va, &vb, ra, rb, fixed, lo, hi);
            } else {
                r[j] = step8(va, NULL, ra, rb, fixed, lo, hi);
            }
        }
        _mm256_storeu_si256((__m256i*)out, pack32(r[0], r[1], r[2], r[3], is_signed));
    }
    onnxq_qadd_tail(i, n, pa, pb, py, p, is_signed);
}

void onnxq_qadd_u8_ukernel_32__avx2(size_t n, const uint8_t* a, const uint8_t* b, uint8_t* y,
                                    const onnxq_qadd_ukernel_params* p) {
    qadd_avx2(n, a, b, y, p, 0);
}

void onnxq_qadd_s8_ukernel_32__avx2(size_t n, const int8_t* a, const int8_t* b, int8_t* y,
                                    const onnxq_qadd_ukernel_params* p) {
    qadd_avx2(n, a, b, y, p, 1);
}
#endif
