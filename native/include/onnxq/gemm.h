/* u8 x s8 GEMM with int32 accumulation and requantisation (the engine of conv and matmul).
 *
 *   acc[m, n] = bias[n] + sum_k (A[m, k] - a_zp) * B[k, n]     (int32, wrapping modulo 2^32)
 *   u8/s8 out: C = clamp(round_half_to_even(clamp((float)acc * scale[n], qmin - zp, qmax - zp)) + zp)
 *   f32 out:   C = (float)acc * scale[n]  (+ bias_f[n])   (fp32 multiply then add, no FMA)
 *   i32 out:   C = acc
 *
 * scale has 1 (per tensor) or N (per channel) values. For requantised outputs it is the MLAS
 * multiplier a_scale * w_scale[n] / c_scale; for f32 output it is a_scale * w_scale[n]. The
 * requantisation is onnxruntime's (MlasRequantizeOutput), so QDQ models give the same bytes.
 *
 * B holds s8 weights with zero point 0 (symmetric) and is packed once by onnxq_gemm_u8s8_pack into
 * a caller-owned buffer of onnxq_gemm_u8s8_packed_size() bytes (64-byte aligned is best, 8 is
 * required). The packed layout is the same for every ISA (a buffer packed once works after
 * onnxq_isa_set): 16-column blocks, K in groups of 4 bytes per column (the "VNNI-4" layout that
 * vpdpbusd, AMX tdpbusd and sdot consume directly), K padded with zeros to a multiple of 64, plus
 * the int32 column sums used for the a_zp correction.
 *
 * Conv and other families call onnxq_gemm_u8s8_run on rows of any u8 matrix (e.g. im2col rows, or
 * the NHWC input itself for 1x1 convolutions): A rows are K contiguous bytes, lda bytes apart.
 * It is thread-safe (no shared mutable state; scratch is allocated per call), so callers may
 * split M over threads and call it once per slice. Kernels: scalar 1x16, avx2 4x8 (exact
 * int16 widening + vpmaddwd), avxvnni 6x16, avx512vnni 8x48 (vpdpbusd), amx 32x32 (tdpbusd),
 * neon 1x16 (widening smlal), neondot 4x16 (sdot on a ^ 0x80, corrected with 128 * colsum).
 * The kernel is the best one of the active ISA, chosen per call by K: under amx a K <= 32 runs
 * the avx512vnni kernel (AMX pads K to 64); onnxq_gemm_u8s8_kernel_name tells which.
 * Signed activations (s8 x s8) are not provided: onnxq emits u8 activations.
 */
#ifndef ONNXQ_GEMM_H
#define ONNXQ_GEMM_H

#include <stddef.h>
#include <stdint.h>

/* Opaque: a buffer written by onnxq_gemm_u8s8_pack. */
typedef struct onnxq_gemm_u8s8_packed onnxq_gemm_u8s8_packed;

/* Bytes needed to pack a K x N weight matrix, or 0 when k or n is 0 or too large. */
size_t onnxq_gemm_u8s8_packed_size(size_t k, size_t n);

/* Packs B[k, n] (element (i, j) at b[i * stride_k + j * stride_n], strides in elements, >= 0, so
 * both [K, N] MatMul weights and [N, K] conv weights pack without a copy); b holds b_len
 * elements, at least (k - 1) * stride_k + (n - 1) * stride_n + 1. b_zp must be 0. */
int onnxq_gemm_u8s8_pack(const int8_t* b, size_t b_len, size_t k, size_t n, ptrdiff_t stride_k,
                         ptrdiff_t stride_n, int32_t b_zp, void* packed, size_t packed_size);

/* K and N of a packed buffer (ONNXQ_E_ARG if it was not written by onnxq_gemm_u8s8_pack, or its
 * header's sizes and offsets disagree with each other or with packed_size). */
int onnxq_gemm_u8s8_packed_shape(const void* packed, size_t packed_size, size_t* k, size_t* n);

/* *small = 1 when every weight of the packed buffer is in [-64, 64] (found when packing; e.g.
 * 7-bit weights, reduce_range), else 0. Then a pair of u8 x s8 products fits int16 for any u8
 * activations, and the AVX2 kernel runs every row on vpmaddubsw, exactly (gemm/avx2.c). */
int onnxq_gemm_u8s8_packed_small_weights(const void* packed, size_t packed_size, int* small);

/* Copies the packed buffer's n column sums sum_k B[k, j] (int32, wrapping) into colsum
 * (colsum_len = n values), e.g. to apply a per-row activation zero point to ONNXQ_I32 output:
 * acc - a_zp[row] * colsum[j]. k and n are what the caller expects: ONNXQ_E_SHAPE when the
 * buffer holds other sizes. */
int onnxq_gemm_u8s8_packed_colsum(const void* packed, size_t packed_size, size_t k, size_t n,
                                  int32_t* colsum, size_t colsum_len);

typedef struct onnxq_gemm_u8s8_params {
    size_t k;              /* K and N the caller expects: must equal the packed buffer's */
    size_t n;
    size_t m;              /* rows of A and C (>= 1) */
    const uint8_t* a;      /* A[m, k], row i at a + i * lda */
    size_t a_len;          /* bytes readable at a: >= (m - 1) * lda + k */
    size_t lda;            /* bytes between A rows, >= k */
    int32_t a_zp;          /* 0..255 */
    const int32_t* bias;   /* int32[bias_len] added to acc, or NULL */
    size_t bias_len;       /* n when bias is given */
    int out_type;          /* onnxq_dtype of C: ONNXQ_U8, ONNXQ_S8, ONNXQ_F32 or ONNXQ_I32 */
    const float* scale;    /* [scale_len]; unused for ONNXQ_I32 (may be NULL) */
    size_t scale_len;      /* 1 or n */
    int32_t out_zp;        /* u8/s8 only, inside the type range */
    int32_t qmin;          /* u8/s8 only: fused clamp, type_min <= qmin <= qmax <= type_max */
    int32_t qmax;          /* (nothing fused: the type range; ReLU: qmin = out_zp) */
    const float* bias_f;   /* f32 only: float[bias_f_len] added after scaling, or NULL */
    size_t bias_f_len;     /* n when bias_f is given */
    void* c;               /* C[m, n], row i at c + i * ldc elements */
    size_t c_len;          /* elements writable at c: >= (m - 1) * ldc + n */
    size_t ldc;            /* elements between C rows, >= n */
} onnxq_gemm_u8s8_params;

/* C = gemm(A, packed B) as described above, with the best kernel for the active ISA.
 * The packed buffer's header (sizes, offsets) is checked against packed_size and against p->k,
 * p->n; every array against its length; nothing is read or written before all checks pass. */
int onnxq_gemm_u8s8_run(const void* packed, size_t packed_size, const onnxq_gemm_u8s8_params* p);

/* onnxq_gemm_u8s8_run for the columns [col0, col0 + cols) of C only (col0 a multiple of 16,
 * 1 <= cols <= n - col0; else ONNXQ_E_SHAPE): the same checks, C still the whole [m, n] matrix
 * (p->c at column 0), other columns untouched. Each value equals the one the whole run writes, so
 * callers may split the columns of one product over threads (each widens or reads only the
 * weights of its columns), as well as its rows. */
int onnxq_gemm_u8s8_run_cols(const void* packed, size_t packed_size, const onnxq_gemm_u8s8_params* p,
                             size_t col0, size_t cols);

/* Name of the micro-kernel onnxq_gemm_u8s8_run uses now for weights with k rows (e.g.
 * "onnxq_gemm_u8s8_ukernel_8x48c4__avx512vnni"), or NULL when the active ISA is unusable. */
const char* onnxq_gemm_u8s8_kernel_name(size_t k);

#endif /* ONNXQ_GEMM_H */
