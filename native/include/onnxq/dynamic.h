/* Dynamic-quantization matmul: fp32 A[m, k] quantized to u8 at run time, s8 weights per output
 * channel (packed once with onnxq_gemm_u8s8_pack, zero point 0), fp32 out.
 *
 * Per tensor (onnxruntime's DynamicQuantizeLinear / DynamicQuantizeMatMul) or per row of A:
 *   lo = min(0, min(A)), hi = max(0, max(A));  a_scale = hi == lo ? 1 : (hi - lo) / 255
 *   a_zp = round_half_to_even(clamp(0 - lo / a_scale, 0, 255))
 *   q = quantize(A, a_scale, a_zp)                          (ONNX QuantizeLinear, fp32 division)
 *   Y[m, n] = (float)acc[m, n] * (a_scale * w_scale[n])  (+ bias[n], a separate fp32 add)
 * with acc = sum_k (q[m, k] - a_zp) * W[k, n] in int32 (native GEMM, every ISA).
 *
 * A must be finite: NaN or +-Inf anywhere in A (per row mode: in any row), or a range whose scale
 * is not a finite value > 0 ((hi - lo) / 255 overflowing, or underflowing to 0), is ONNXQ_E_ARG
 * and no output is written. Every array comes with its length in elements, checked first.
 */
#ifndef ONNXQ_DYNAMIC_H
#define ONNXQ_DYNAMIC_H

#include <stddef.h>
#include <stdint.h>

typedef enum onnxq_dq_mode {
    ONNXQ_DQ_PER_TENSOR = 0,
    ONNXQ_DQ_PER_ROW = 1
} onnxq_dq_mode;

/* q[rows, cols] (u8, q_len = rows * cols) = dynamic quantization of x[rows, cols] (row i at
 * x + i * ldx, x_len >= (rows - 1) * ldx + cols); scale / zp receive qparams_len = 1 value (per
 * tensor) or rows values (per row). */
int onnxq_dynamic_quantize(const float* x, size_t x_len, size_t rows, size_t cols, size_t ldx,
                           int mode, uint8_t* q, size_t q_len, float* scale, int32_t* zp,
                           size_t qparams_len);

typedef struct onnxq_dqmm_params {
    size_t k;                /* K and N the caller expects: must equal the packed buffer's */
    size_t n;
    size_t m;
    const float* a;          /* A[m, k], row i at a + i * lda */
    size_t a_len;            /* elements readable at a: >= (m - 1) * lda + k */
    size_t lda;              /* elements between A rows, >= k */
    int mode;                /* onnxq_dq_mode */
    const float* w_scale;    /* [w_scale_len] */
    size_t w_scale_len;      /* 1 or n */
    const float* bias;       /* fp32 [bias_len] or NULL */
    size_t bias_len;         /* n when bias is given */
    float* y;                /* Y[m, n], row i at y + i * ldy */
    size_t y_len;            /* elements writable at y: >= (m - 1) * ldy + n */
    size_t ldy;              /* elements between Y rows, >= n */
} onnxq_dqmm_params;

/* Y = dqmm(A, packed W); the packed buffer is checked against packed_size and p->k, p->n. */
int onnxq_dqmm(const void* packed_w, size_t packed_size, const onnxq_dqmm_params* p);

#endif /* ONNXQ_DYNAMIC_H */
