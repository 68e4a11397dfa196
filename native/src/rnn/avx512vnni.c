/* Gate activations, AVX-512: rnn/act.h on 16 lanes (separate multiplies and adds, no FMA),
 * masked tail. */
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
#include <immintrin.h>

#include "rnn/ukernel.h"

static inline __m512 exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps((float)1.44269504088896341)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_sub_ps(x, _mm512_mul_ps(n, _mm512_set1_ps((float)0.693145751953125)));
    r = _mm512_sub_ps(r, _mm512_mul_ps(n, _mm512_set1_ps((float)1.42860676533018672e-06)));
    __m512 p = _mm512_set1_ps((float)(1.0 / 720.0));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps((float)(1.0 / 120.0)));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps((float)(1.0 / 24.0)));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps((float)(1.0 / 6.0)));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(0.5f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f));
    const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

static inline __mmask16 mask16(size_t left) {
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

void onnxq_sigmoid_f32_ukernel_16__avx512vnni(size_t n, const float* x, float* y) {
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = mask16(n - i);
        const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        const __m512 e = exp16(_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), sign)));
        _mm512_mask_storeu_ps(y + i, m, _mm512_div_ps(one, _mm512_add_ps(one, e)));
    }
}

void onnxq_tanh_f32_ukernel_16__avx512vnni(size_t n, const float* x, float* y) {
    const __m512 one = _mm512_set1_ps(1.0f), m2 = _mm512_set1_ps(-2.0f);
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = mask16(n - i);
        const __m512i v = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, x + i));
        const __m512 a = _mm512_castsi512_ps(_mm512_andnot_si512(sign, v));
        const __m512 t = exp16(_mm512_mul_ps(m2, a));
        const __m512 q = _mm512_div_ps(_mm512_sub_ps(one, t), _mm512_add_ps(one, t));
        const __m512i r = _mm512_or_si512(_mm512_andnot_si512(sign, _mm512_castps_si512(q)),
                                          _mm512_and_si512(sign, v));
        _mm512_mask_storeu_ps(y + i, m, _mm512_castsi512_ps(r));
    }
}
#endif
