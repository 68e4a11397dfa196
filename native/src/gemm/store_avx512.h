/* AVX-512 output stage of the u8s8 GEMM (private; include after the file's #pragma GCC target
 * with avx512f/bw/vl): 16 int32 accumulators -> C, and one row of up to 48 columns -> u8/s8 with
 * a single narrowing store. Same arithmetic as onnxq_requant_one. */
#ifndef ONNXQ_GEMM_STORE_AVX512_H
#define ONNXQ_GEMM_STORE_AVX512_H

#include <immintrin.h>

#include "common/requant_avx512.h"
#include "gemm/ukernel.h"

/* Stores min(cnt, 16) columns of row `row` starting at column col (col is a multiple of 16, so
 * the padded scale/bias arrays can be read in full). */
static inline void onnxq_gemm_store16_avx512(const onnxq_gemm_u8s8_ctx* ctx, __m512i acc,
                                             size_t row, size_t col, size_t cnt) {
    const __mmask16 m = onnxq_mask16(cnt);
    const size_t off = row * ctx->ldc + col;
    switch (ctx->out_type) {
        case ONNXQ_U8:
        case ONNXQ_S8: {
            const __m512i q = onnxq_requant_avx512(acc, _mm512_loadu_ps(ctx->scale + col),
                                                   _mm512_set1_ps(ctx->lo), _mm512_set1_ps(ctx->hi),
                                                   _mm512_set1_epi32(ctx->out_zp));
            onnxq_store_bytes_avx512(q, (uint8_t*)ctx->c + off, m);
            break;
        }
        case ONNXQ_F32: {
            __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), _mm512_loadu_ps(ctx->scale + col));
            if (ctx->bias_f != NULL) v = _mm512_add_ps(v, _mm512_loadu_ps(ctx->bias_f + col));
            _mm512_mask_storeu_ps((float*)ctx->c + off, m, v);
            break;
        }
        default:
            _mm512_mask_storeu_epi32((int32_t*)ctx->c + off, m, acc);
            break;
    }
}

/* Requantisation constants, copied out of ctx so that the byte stores (which may alias anything)
 * do not force them to be reloaded. */
typedef struct onnxq_gemm_out_avx512 {
    __m512 hi;
    __m512i zp16, qmin8, perm;
    uint8_t* c;
    size_t ldc;
    int narrow; /* u8 or s8 output */
    int is_s8;
} onnxq_gemm_out_avx512;

/* Fills oc from ctx (once per call). */
static inline void onnxq_gemm_out_init_avx512(const onnxq_gemm_u8s8_ctx* ctx,
                                              onnxq_gemm_out_avx512* oc) {
    oc->hi = _mm512_set1_ps(ctx->hi);
    oc->zp16 = _mm512_set1_epi16((short)ctx->out_zp);
    oc->qmin8 = _mm512_set1_epi8((char)(int)(ctx->lo + (float)ctx->out_zp));
    oc->perm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    oc->c = (uint8_t*)ctx->c;
    oc->ldc = ctx->ldc;
    oc->narrow = ctx->out_type == ONNXQ_U8 || ctx->out_type == ONNXQ_S8;
    oc->is_s8 = ctx->out_type == ONNXQ_S8;
}

/* Stores row `row`, columns col0 .. col0 + min(cnt, 16 * nbt) of nbt (1..3, a constant at each
 * call site) accumulator vectors; col0 is a multiple of 16. Other output types go through
 * onnxq_gemm_store16_avx512. u8/s8 output:
 *
 * v = min((float)acc * scale, hi) and
 * r = cvtps2dq(v) per 16 lanes, then vpackssdw to int16, a saturating add of the zero point,
 * vpackuswb / vpacksswb to bytes, a max with qmin, one vpermd to restore the column order and one
 * masked byte store. Bit-exact with onnxq_requant_one: rounding is monotone and qmin, qmax are
 * integers, so round(clamp(v, lo, hi)) + zp = max(min(round(v), hi) + zp, qmin); v is never NaN
 * (acc is an integer, scale finite), the min with hi in float keeps huge v from wrapping in
 * cvtps2dq (its out-of-range result INT_MIN, from v < -2^31, saturates low and meets the max),
 * and each saturating step only moves values that are below qmin anyway.
 */
static inline __attribute__((always_inline)) void onnxq_gemm_store_row_avx512(
    const onnxq_gemm_u8s8_ctx* ctx, const onnxq_gemm_out_avx512* oc, const __m512i* acc,
    size_t row, size_t col0, size_t cnt, const int nbt) {
    if (!oc->narrow) {
        for (int b = 0; b < nbt && (size_t)b * 16 < cnt; ++b)
            onnxq_gemm_store16_avx512(ctx, acc[b], row, col0 + 16 * (size_t)b, cnt - 16 * (size_t)b);
        return;
    }
    __m512i q[4];
#pragma GCC unroll 4
    for (int b = 0; b < nbt; ++b) {
        const __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[b]),
                                       _mm512_loadu_ps(ctx->scale + col0 + 16 * b));
        q[b] = _mm512_cvtps_epi32(_mm512_min_ps(v, oc->hi));
    }
#pragma GCC unroll 4
    for (int b = nbt; b < 4; ++b) q[b] = q[0];
    /* lane L of the packs holds dword L of q0, q1, q2, q3 in turn; perm puts them in order */
    const __m512i w01 = _mm512_adds_epi16(_mm512_packs_epi32(q[0], q[1]), oc->zp16);
    const __m512i w23 = _mm512_adds_epi16(_mm512_packs_epi32(q[2], q[3]), oc->zp16);
    const __m512i bytes = oc->is_s8 ? _mm512_max_epi8(_mm512_packs_epi16(w01, w23), oc->qmin8)
                                    : _mm512_max_epu8(_mm512_packus_epi16(w01, w23), oc->qmin8);
    const __m512i out = _mm512_permutexvar_epi32(oc->perm, bytes);
    const size_t n = cnt < 16 * (size_t)nbt ? cnt : 16 * (size_t)nbt;
    const __mmask64 m = n >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << n) - 1);
    _mm512_mask_storeu_epi8(oc->c + row * oc->ldc + col0, m, out);
}

#endif /* ONNXQ_GEMM_STORE_AVX512_H */
