/* Micro-kernel types of the quant family: n contiguous values, one scale and zero point. */
#ifndef ONNXQ_QUANT_UKERNEL_H
#define ONNXQ_QUANT_UKERNEL_H

#include <stddef.h>
#include <stdint.h>

/* y[i] = saturate(round_half_even(x[i] / scale) + zp), NaN -> type minimum. */
typedef void onnxq_quantize_f32_u8_ukernel_fn(size_t n, const float* x, float scale, int32_t zp,
                                              uint8_t* y);
typedef void onnxq_quantize_f32_s8_ukernel_fn(size_t n, const float* x, float scale, int32_t zp,
                                              int8_t* y);
/* y[i] = (float)(x[i] - zp) * scale. */
typedef void onnxq_dequantize_u8_f32_ukernel_fn(size_t n, const uint8_t* x, float scale,
                                                int32_t zp, float* y);
typedef void onnxq_dequantize_s8_f32_ukernel_fn(size_t n, const int8_t* x, float scale,
                                                int32_t zp, float* y);

#endif /* ONNXQ_QUANT_UKERNEL_H */
