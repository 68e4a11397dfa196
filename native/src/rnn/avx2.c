/* Gate activations, AVX2: rnn/act.h on 8 lanes (separate multiplies and adds, no FMA), the tail
 * through the scalar functions (same operations, same results). */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include "rnn/act.h"
#include "rnn/ukernel.h"

static inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps((float)1.44269504088896341)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps((float)0.693145751953125)));
    r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps((float)1.42860676533018672e-06)));
    __m256 p = _mm256_set1_ps((float)(1.0 / 720.0));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps((float)(1.0 / 120.0)));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps((float)(1.0 / 24.0)));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps((float)(1.0 / 6.0)));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(0.5f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

void onnxq_sigmoid_f32_ukernel_8__avx2(size_t n, const float* x, float* y) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp8(_mm256_xor_ps(_mm256_loadu_ps(x + i), sign));
        _mm256_storeu_ps(y + i, _mm256_div_ps(one, _mm256_add_ps(one, e)));
    }
    for (; i < n; ++i) y[i] = onnxq_sigmoid_f32(x[i]);
}

void onnxq_tanh_f32_ukernel_8__avx2(size_t n, const float* x, float* y) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    const __m256 m2 = _mm256_set1_ps(-2.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256 t = exp8(_mm256_mul_ps(m2, _mm256_andnot_ps(sign, v)));
        const __m256 q = _mm256_div_ps(_mm256_sub_ps(one, t), _mm256_add_ps(one, t));
        _mm256_storeu_ps(y + i, _mm256_or_ps(_mm256_andnot_ps(sign, q), _mm256_and_ps(sign, v)));
    }
    for (; i < n; ++i) y[i] = onnxq_tanh_f32(x[i]);
}
#endif
