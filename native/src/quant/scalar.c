/* Quantize / dequantize, portable C (the twin of onnxq.kernels.reference.quant). */
#include "common/quantize_scalar.h"
#include "quant/ukernel.h"

void onnxq_quantize_f32_u8_ukernel_1__scalar(size_t n, const float* x, float scale, int32_t zp,
                                             uint8_t* y) {
    const float lo = (float)(0 - zp), hi = (float)(255 - zp);
    for (size_t i = 0; i < n; ++i) y[i] = (uint8_t)onnxq_quantize_one(x[i], scale, lo, hi, zp);
}

void onnxq_quantize_f32_s8_ukernel_1__scalar(size_t n, const float* x, float scale, int32_t zp,
                                             int8_t* y) {
    const float lo = (float)(-128 - zp), hi = (float)(127 - zp);
    for (size_t i = 0; i < n; ++i) y[i] = (int8_t)onnxq_quantize_one(x[i], scale, lo, hi, zp);
}

void onnxq_dequantize_u8_f32_ukernel_1__scalar(size_t n, const uint8_t* x, float scale,
                                               int32_t zp, float* y) {
    for (size_t i = 0; i < n; ++i) y[i] = (float)((int32_t)x[i] - zp) * scale;
}

void onnxq_dequantize_s8_f32_ukernel_1__scalar(size_t n, const int8_t* x, float scale,
                                               int32_t zp, float* y) {
    for (size_t i = 0; i < n; ++i) y[i] = (float)((int32_t)x[i] - zp) * scale;
}
