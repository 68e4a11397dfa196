/* AVX-512 VNNI depthwise conv: 32 channels per step; per tap one zero-extension of the u8 input
 * to int16 and two exact vpdpwssd with the even / odd weight arrays (see conv/ukernel.h). The
 * channel tail uses masked loads and stores: nothing is read or written past the row. */
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
#include <immintrin.h>

#include "conv/ukernel.h"
#include "onnxq_kernels.h" /* generated declarations */

static inline __m128i dw_requant(__m512i acc, const float* scale, __m512 lo, __m512 hi,
                                 __m512i yzp) {
    __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), _mm512_loadu_ps(scale));
    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    return _mm512_cvtusepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(v), yzp));
}

/* nb (<= 6) blocks of 32 channels from channel c (nb a compile-time constant after inlining:
 * the 2 * nb accumulator chains are independent, hiding vpdpwssd's latency). */
static inline __attribute__((always_inline)) void dw_blocks(const onnxq_dw_args* a,
                                                            const uint8_t* const* input, size_t c,
                                                            size_t nb, __mmask32 last_mask,
                                                            uint8_t* out) {
    const __m512 lo = _mm512_set1_ps(a->lo);
    const __m512 hi = _mm512_set1_ps(a->hi);
    const __m512i yzp = _mm512_set1_epi32(a->y_zp);
    __m512i acc_e[6], acc_o[6];
#pragma GCC unroll 6
    for (size_t b = 0; b < nb; b++) {
        acc_e[b] = _mm512_loadu_si512(a->bias_eo + c + 32 * b);
        acc_o[b] = _mm512_loadu_si512(a->bias_eo + c + 32 * b + 16);
    }
    const int16_t* w = a->weights + 2 * c;
    for (size_t t = 0; t < a->taps; t++, w += a->tap_stride) {
        const uint8_t* px = input[t] + c;
    #pragma GCC unroll 6
    for (size_t b = 0; b < nb; b++) {
            const __mmask32 m = b + 1 == nb ? last_mask : (__mmask32)0xFFFFFFFFu;
            const __m512i x = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, px + 32 * b));
            acc_e[b] = _mm512_dpwssd_epi32(acc_e[b], x, _mm512_loadu_si512(w + 64 * b));
            acc_o[b] = _mm512_dpwssd_epi32(acc_o[b], x, _mm512_loadu_si512(w + 64 * b + 32));
        }
    }
#pragma GCC unroll 6
    for (size_t b = 0; b < nb; b++) {
        const __mmask32 m = b + 1 == nb ? last_mask : (__mmask32)0xFFFFFFFFu;
        const size_t cb = c + 32 * b;
        const __m128i qe = dw_requant(acc_e[b], a->scale_eo + cb, lo, hi, yzp);
        const __m128i qo = dw_requant(acc_o[b], a->scale_eo + cb + 16, lo, hi, yzp);
        _mm_mask_storeu_epi8(out + cb, (__mmask16)m, _mm_unpacklo_epi8(qe, qo));
        _mm_mask_storeu_epi8(out + cb + 16, (__mmask16)(m >> 16), _mm_unpackhi_epi8(qe, qo));
    }
}

void onnxq_dwconv_u8s8_rq_ukernel_c32__avx512vnni(const onnxq_dw_args* a,
                                                 const uint8_t* const* input, uint8_t* out) {
    const __mmask32 full = (__mmask32)0xFFFFFFFFu;
    size_t c = 0;
    for (; c + 6 * ONNXQ_DW_BLOCK < a->channels; c += 4 * ONNXQ_DW_BLOCK) {
        dw_blocks(a, input, c, 4, full, out);
    }
    /* 1 to 6 blocks left: one group, so that no lone block runs a latency-bound chain. */
    const size_t left = a->channels - c;
    if (left == 0) return;
    const size_t nb = (left + ONNXQ_DW_BLOCK - 1) / ONNXQ_DW_BLOCK;
    const size_t tail = left - (nb - 1) * ONNXQ_DW_BLOCK; /* 1..32 channels in the last block */
    const __mmask32 m = tail == 32 ? full : (__mmask32)((1u << tail) - 1u);
    switch (nb) {
        case 1: dw_blocks(a, input, c, 1, m, out); break;
        case 2: dw_blocks(a, input, c, 2, m, out); break;
        case 3: dw_blocks(a, input, c, 3, m, out); break;
        case 4: dw_blocks(a, input, c, 4, m, out); break;
        case 5: dw_blocks(a, input, c, 5, m, out); break;
        default: dw_blocks(a, input, c, 6, m, out); break;
    }
}
#endif
