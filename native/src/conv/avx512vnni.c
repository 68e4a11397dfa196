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

/* Quad rows: 16 channels of 4 positions -> 64 bytes [c][j], by one dword transpose across the
 * 128-bit lanes (vpermd) and one byte transpose inside them (vpshufb). */
void onnxq_dwrowpack_u8_ukernel_c16__avx512vnni(size_t channels, size_t cpad,
                                               const uint8_t* const* src, size_t count,
                                               uint8_t* q) {
    const __m512i dwords = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    const __m512i bytes = _mm512_broadcast_i32x4(
        _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
    for (size_t pos = 0; pos < count; pos++, q += 4 * cpad) {
        const uint8_t* const* s = src + 4 * pos;
        for (size_t c = 0; c < cpad; c += ONNXQ_DWROW_CHANNELS) {
            const size_t left = channels > c ? channels - c : 0;
            const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
            __m512i z = _mm512_castsi128_si512(_mm_maskz_loadu_epi8(m, s[0] + c));
            z = _mm512_inserti32x4(z, _mm_maskz_loadu_epi8(m, s[1] + c), 1);
            z = _mm512_inserti32x4(z, _mm_maskz_loadu_epi8(m, s[2] + c), 2);
            z = _mm512_inserti32x4(z, _mm_maskz_loadu_epi8(m, s[3] + c), 3);
            z = _mm512_shuffle_epi8(_mm512_permutexvar_epi32(dwords, z), bytes);
            _mm512_storeu_si512(q + 4 * c, z);
        }
    }
}

/* up to 4 blocks of 16 channels of one pixel: one vpdpbusd per kernel row and block. */
static inline __attribute__((always_inline)) void dwrow_blocks(const onnxq_dwrow_args* a,
                                                               const uint8_t* const* qrows,
                                                               size_t pos, size_t c, size_t nb,
                                                               __mmask16 last, uint8_t* out) {
    const __m512 lo = _mm512_set1_ps(a->lo);
    const __m512 hi = _mm512_set1_ps(a->hi);
    const __m512i yzp = _mm512_set1_epi32(a->y_zp);
    __m512i acc[4];
#pragma GCC unroll 4
    for (size_t b = 0; b < nb; b++) acc[b] = _mm512_loadu_si512(a->bias + c + 16 * b);
    for (size_t i = 0; i < a->kernel_h; i++) {
        const uint8_t* x = qrows[i] + 4 * (pos * a->cpad + c);
        const int8_t* w = a->weights + 4 * (i * a->cpad + c);
#pragma GCC unroll 4
        for (size_t b = 0; b < nb; b++) {
            acc[b] = _mm512_dpbusd_epi32(acc[b], _mm512_loadu_si512(x + 64 * b),
                                         _mm512_loadu_si512(w + 64 * b));
        }
    }
#pragma GCC unroll 4
    for (size_t b = 0; b < nb; b++) {
        const __mmask16 m = b + 1 == nb ? last : (__mmask16)0xFFFF;
        _mm_mask_storeu_epi8(out + c + 16 * b, m,
                             dw_requant(acc[b], a->scale + c + 16 * b, lo, hi, yzp));
    }
}

void onnxq_dwrow_u8s8_rq_ukernel_c16__avx512vnni(const onnxq_dwrow_args* a,
                                                const uint8_t* const* qrows, size_t count,
                                                uint8_t* out) {
    const __mmask16 full = (__mmask16)0xFFFF;
    const size_t nb_all = (a->channels + 15) / 16;
    const size_t tail = a->channels - (nb_all - 1) * 16;
    const __mmask16 last = tail == 16 ? full : (__mmask16)((1u << tail) - 1u);
    for (size_t pos = 0; pos < count; pos++, out += a->channels) {
        size_t c = 0, nb = nb_all;
        for (; nb > 4; nb -= 4, c += 64) dwrow_blocks(a, qrows, pos, c, 4, full, out);
        switch (nb) {
            case 1: dwrow_blocks(a, qrows, pos, c, 1, last, out); break;
            case 2: dwrow_blocks(a, qrows, pos, c, 2, last, out); break;
            case 3: dwrow_blocks(a, qrows, pos, c, 3, last, out); break;
            default: dwrow_blocks(a, qrows, pos, c, 4, last, out); break;
        }
    }
}
#endif
