/* Quantize / dequantize, portable C (the twin of onnxq.kernels.reference.quant). */
#include "quant/quant_tail.h"
#include "quant/ukernel.h"

void onnxq_quantize_f32_u8_ukernel_1__scalar(size_t n, const float* x, float scale, int32_t zp,
                                             uint8_t* y) {
    onnxq_quantize_tail(0, n, x, scale, zp, (float)(0 - zp), (float)(255 - zp), y);
}

void onnxq_quantize_f32_s8_ukernel_1__scalar(size_t n, const float* x, float scale, int32_t zp,
                                             int8_t* y) {
    onnxq_quantize_tail(0, n, x, scale, zp, (float)(-128 - zp), (float)(127 - zp), (uint8_t*)y);
}

void onnxq_dequantize_u8_f32_ukernel_1__scalar(size_t n, const uint8_t* x, float scale,
                                               int32_t zp, float* y) {
    onnxq_dequantize_tail(0, n, x, scale, zp, 0, y);
}

void onnxq_dequantize_s8_f32_ukernel_1__scalar(size_t n, const int8_t* x, float scale,
                                               int32_t zp, float* y) {
    onnxq_dequantize_tail(0, n, (const uint8_t*)x, scale, zp, 1, y);
}
