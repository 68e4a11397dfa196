/* Min / max of fp32 values, AVX2: 16 per step; a NaN makes the range NaN, like the scalar kernel. */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include "dynamic/dynamic_tail.h"
#include "dynamic/ukernel.h"

static inline float hmin(__m256 v) {
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    m = _mm_min_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

static inline float hmax(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

void onnxq_minmax_f32_ukernel_32__avx2(size_t n, const float* x, float* lo, float* hi) {
    /* min_ps(v, acc) returns acc when v is NaN (NaN in acc stays): NaN inputs are counted in
     * `nan` (unordered compares) instead, and make the whole range NaN */
    __m256 mn0 = _mm256_set1_ps(*lo), mn1 = mn0, mx0 = _mm256_set1_ps(*hi), mx1 = mx0;
    __m256 nan = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(a, b, _CMP_UNORD_Q));
        mn0 = _mm256_min_ps(a, mn0);
        mn1 = _mm256_min_ps(b, mn1);
        mx0 = _mm256_max_ps(a, mx0);
        mx1 = _mm256_max_ps(b, mx1);
    }
    if (_mm256_movemask_ps(nan) != 0) {
        *lo = *hi = NAN;
        return;
    }
    *lo = hmin(_mm256_min_ps(mn0, mn1));
    *hi = hmax(_mm256_max_ps(mx0, mx1));
    onnxq_minmax_f32_tail(n - i, x + i, lo, hi);
}
#endif
