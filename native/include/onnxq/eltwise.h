/* Elementwise add of two quantized tensors with requantisation (QLinearAdd), optional ReLU.
 *
 * The output is viewed as [outer, inner]; each operand is FULL (outer * inner values), INNER
 * (inner values repeated for every row: per-channel / trailing-axes broadcast), ROW (outer values,
 * constant along each row) or SCALAR (one value). a, b and y share the element type (u8 or s8).
 * Arithmetic is onnxruntime's x86 QLinearAdd (fp32, fused multiply-adds), bit for bit:
 *
 *   ra = a_scale / y_scale,  rb = b_scale / y_scale,  fixed = y_zp - fma(ra, a_zp, rb * b_zp)
 *   y  = fma(a, ra, fma(b, rb, fixed))      (a constant per row and b not: fma(b, rb, fma(a, ra, fixed)))
 *   q  = round_half_to_even(clamp(y, qmin, qmax))
 *
 * qmin/qmax are the fused clamp (type range when nothing is fused; ReLU: qmin = y_zp).
 * Every ISA (NEON included, with vfmaq) computes exactly this; onnxruntime's own ARM build uses a
 * fixed-point variant instead, so its bytes there may differ from these in the last unit.
 */
#ifndef ONNXQ_ELTWISE_H
#define ONNXQ_ELTWISE_H

#include <stddef.h>
#include <stdint.h>

typedef enum onnxq_bcast {
    ONNXQ_BCAST_FULL = 0,
    ONNXQ_BCAST_INNER = 1,
    ONNXQ_BCAST_ROW = 2,
    ONNXQ_BCAST_SCALAR = 3
} onnxq_bcast;

typedef struct onnxq_qadd_params {
    size_t outer;
    size_t inner;
    int qtype;        /* onnxq_dtype: ONNXQ_U8 or ONNXQ_S8 (a, b and y) */
    int a_bcast;      /* onnxq_bcast */
    int b_bcast;
    float a_scale;
    float b_scale;
    float y_scale;
    int32_t a_zp;
    int32_t b_zp;
    int32_t y_zp;
    int32_t qmin;     /* fused clamp: type_min <= qmin <= qmax <= type_max */
    int32_t qmax;
} onnxq_qadd_params;

/* y[outer * inner] = a + b; a_len / b_len / y_len are element counts checked against params. */
int onnxq_qadd(const onnxq_qadd_params* p, const void* a, size_t a_len, const void* b,
               size_t b_len, void* y, size_t y_len);

#endif /* ONNXQ_ELTWISE_H */
