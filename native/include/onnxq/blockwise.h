/* Block-wise 4-bit weights times fp32 activations quantized per row to int8 at run time
 * (weight-only quantization's matmul; "qd8_f32_qb4w" after XNNPACK: dynamic int8 activations,
 * fp32 output, 4-bit weights with one scale per block).
 *
 * Weights W[n, k] are 4-bit codes u in [0, 15] in blocks of `block` consecutive k (a power of two
 * in [32, 65536]); block b of row n has the scale ws[n, b] and the zero point z[n, b] in [0, 15]
 * (8 when no zero points are given: signed int4 stored as u = q + 8). nb = ceil(k / block).
 *
 * Activations, per row r of A[m, k] (onnxq_qd8_quantize_rows):
 *   amax = max(-min(A[r]), max(A[r]))       (fp32, every value finite, else ONNXQ_E_ARG)
 *   s_a = amax / 127 (fp32 division); s_a = 1 when that is not > 0 (amax 0 or tiny subnormal)
 *   q[r, i] = round_half_even(clamp(A[r, i] / s_a, -128, 127))   (ONNX QuantizeLinear, s8, zp 0;
 *           |q| <= 127 in fact), q[r, i] = 0 for i in [k, nb * block) (padding)
 *   bsum[r, b] = sum of q[r, i] over block b
 * Product, per row r and column n (onnxq_qb4w_run_cols / onnxq_qb4w_matmul):
 *   acc[b] = sum_{i in block b} q[r, i] * u[n, i] - z[n, b] * bsum[r, b]     (int32, wrapping)
 *   y = 0.0f; for b = 0, 1, ..., nb - 1 in this order:  y = y + (float)acc[b] * (s_a * ws[n, b])
 *   y = y + bias[n] when a bias is given
 * Every step is one fp32 operation rounded to nearest even (no fused multiply-add), so every ISA
 * gives the same bits as the numpy reference (onnxq/kernels/reference/blockwise.py).
 *
 * Packed weights (onnxq_qb4w_pack, from onnxruntime MatMulNBits' layout) carry a header (magic,
 * version, shape, sections) checked completely by every call that reads them.
 */
#ifndef ONNXQ_BLOCKWISE_H
#define ONNXQ_BLOCKWISE_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of the packed form of k x n weights in blocks of `block` (with zero points when
 * has_zero_points != 0) into *size; ONNXQ_E_ARG / ONNXQ_E_SHAPE for a bad block or shape. */
int onnxq_qb4w_packed_size(size_t k, size_t n, size_t block, int has_zero_points, size_t* size);

/* Packs weights given in MatMulNBits' layout: b[n][nb][block / 2] bytes (b_len = n * nb * block / 2;
 * element i of row n in byte i / 2 of its row, the low nibble first for even i), scales[n * nb]
 * (finite), zero_points NULL (all 8) or packed the same way per row: [n][ceil(nb / 2)] bytes.
 * packed: 8-byte aligned, packed_size >= onnxq_qb4w_packed_size. */
int onnxq_qb4w_pack(size_t k, size_t n, size_t block, const uint8_t* b, size_t b_len,
                    const float* scales, size_t scales_len, const uint8_t* zero_points,
                    size_t zero_points_len, void* packed, size_t packed_size);

/* The shape of a packed buffer, after checking its header completely. */
int onnxq_qb4w_packed_shape(const void* packed, size_t packed_size, size_t* k, size_t* n,
                            size_t* block);

/* Activations quantized per row (see above), in caller-owned buffers. kp = nb * block. */
typedef struct onnxq_qd8_rows {
    size_t m;            /* rows */
    size_t k;            /* values per row */
    size_t block;        /* the weights' block size */
    int8_t* q;           /* [m, kp] */
    size_t q_len;        /* = m * kp */
    float* scale;        /* [m] */
    size_t scale_len;    /* = m */
    int32_t* bsum;       /* [m, nb] */
    size_t bsum_len;     /* = m * nb */
} onnxq_qd8_rows;

/* Quantizes A[m, k] (row r at a + r * lda, a_len >= (m - 1) * lda + k) into r's buffers. NaN or
 * +-Inf in A is ONNXQ_E_ARG naming the row; nothing is written then. */
int onnxq_qd8_quantize_rows(const float* a, size_t a_len, size_t lda, const onnxq_qd8_rows* r);

/* y[r, col0 .. col0 + cols) for every row r of the quantized activations (which must have the
 * packed weights' k and block); y row r at y + r * ldy (columns index n, not n - col0); col0 a
 * multiple of 16, col0 + cols <= n. bias: NULL or [n]. Thread-safe: split columns over threads. */
int onnxq_qb4w_run_cols(const void* packed, size_t packed_size, const onnxq_qd8_rows* r,
                        const float* bias, size_t bias_len, float* y, size_t y_len, size_t ldy,
                        size_t col0, size_t cols);

typedef struct onnxq_qb4w_params {
    size_t k;            /* K and N the caller expects: must equal the packed buffer's */
    size_t n;
    size_t m;
    const float* a;      /* A[m, k], row i at a + i * lda */
    size_t a_len;        /* >= (m - 1) * lda + k */
    size_t lda;          /* >= k */
    const float* bias;   /* fp32 [bias_len] or NULL */
    size_t bias_len;     /* n when bias is given */
    float* y;            /* Y[m, n], row i at y + i * ldy */
    size_t y_len;        /* >= (m - 1) * ldy + n */
    size_t ldy;          /* >= n */
    size_t threads;      /* 0 or 1: the calling thread; more: up to that many (conv's pool) */
} onnxq_qb4w_params;

/* Y = A W^T (+ bias): quantize A's rows, then every column (see above). */
int onnxq_qb4w_matmul(const void* packed, size_t packed_size, const onnxq_qb4w_params* p);

#endif /* ONNXQ_BLOCKWISE_H */
