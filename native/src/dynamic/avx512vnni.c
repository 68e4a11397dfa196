/* Min / max of fp32 values, AVX-512: 32 per step, masked tail; a NaN makes the range NaN. */
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
#include <immintrin.h>

#include <math.h>

#include "dynamic/ukernel.h"

void onnxq_minmax_f32_ukernel_32__avx512vnni(size_t n, const float* x, float* lo, float* hi) {
    /* min_ps(v, acc) returns acc when v is NaN (NaN in acc stays): NaN inputs are counted in
     * `nan` (unordered compares) instead, and make the whole range NaN */
    __m512 mn0 = _mm512_set1_ps(*lo), mn1 = mn0, mx0 = _mm512_set1_ps(*hi), mx1 = mx0;
    __mmask16 nan = 0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
        nan |= _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q);
        mn0 = _mm512_min_ps(a, mn0);
        mn1 = _mm512_min_ps(b, mn1);
        mx0 = _mm512_max_ps(a, mx0);
        mx1 = _mm512_max_ps(b, mx1);
    }
    for (; i < n; i += 16) {
        const size_t left = n - i;
        const __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
        const __m512 a = _mm512_maskz_loadu_ps(m, x + i);
        nan |= _mm512_mask_cmp_ps_mask(m, a, a, _CMP_UNORD_Q);
        mn0 = _mm512_mask_min_ps(mn0, m, a, mn0);
        mx0 = _mm512_mask_max_ps(mx0, m, a, mx0);
    }
    if (nan != 0) {
        *lo = *hi = NAN;
        return;
    }
    *lo = _mm512_reduce_min_ps(_mm512_min_ps(mn0, mn1));
    *hi = _mm512_reduce_max_ps(_mm512_max_ps(mx0, mx1));
}
#endif
