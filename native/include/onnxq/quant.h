/* Quantize (fp32 -> u8/s8) and dequantize (u8/s8 -> fp32), per tensor or per channel.
 *
 * The tensor is viewed as [outer, channels, inner] (C order); channel c uses scale[c] and zp[c]
 * (per tensor: channels = 1). Exactly ONNX QuantizeLinear / DequantizeLinear as onnxruntime
 * computes them:
 *
 *   quantize:   v = x / scale[c]                    (fp32 division)
 *               v = clamp(v, qmin - zp[c], qmax - zp[c])   (NaN -> qmin - zp[c])
 *               q = round_half_to_even(v) + zp[c]   (so q saturates to [qmin, qmax])
 *   dequantize: y = (float)(q - zp[c]) * scale[c]   (fp32 multiply)
 *
 * qmin/qmax are the type range: [0, 255] for ONNXQ_U8, [-128, 127] for ONNXQ_S8. Scales must be
 * finite and > 0, zero points inside the type range. Every array comes with its length in
 * elements, checked before anything is read: scale_len = zp_len = channels,
 * x_len = y_len = outer * channels * inner.
 */
#ifndef ONNXQ_QUANT_H
#define ONNXQ_QUANT_H

#include <stddef.h>
#include <stdint.h>

typedef struct onnxq_quant_params {
    size_t outer;
    size_t channels;      /* 1 for per-tensor */
    size_t inner;
    const float* scale;   /* [scale_len] */
    size_t scale_len;     /* = channels */
    const int32_t* zp;    /* [zp_len] */
    size_t zp_len;        /* = channels */
    int qtype;            /* onnxq_dtype: ONNXQ_U8 or ONNXQ_S8 */
} onnxq_quant_params;

/* y[outer*channels*inner] (u8 or s8 by p->qtype) = quantize(x); x_len / y_len in elements. */
int onnxq_quantize(const onnxq_quant_params* p, const float* x, size_t x_len, void* y,
                   size_t y_len);

/* y[outer*channels*inner] (fp32) = dequantize(x), x u8 or s8 by p->qtype. */
int onnxq_dequantize(const onnxq_quant_params* p, const void* x, size_t x_len, float* y,
                     size_t y_len);

#endif /* ONNXQ_QUANT_H */
