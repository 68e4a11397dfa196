/* The scalar quantize / dequantize steps of the quant family: the whole scalar kernels and the
 * tail of every vector kernel that has no masked loads (same bytes as the vector steps). */
#ifndef ONNXQ_QUANT_TAIL_H
#define ONNXQ_QUANT_TAIL_H

#include <stddef.h>
#include <stdint.h>

#include "common/quantize_scalar.h"

/* y[i] = round_half_even(clamp(x[i] / scale, lo, hi)) + zp for first <= i < n, stored as bytes
 * (the value is inside the type range); lo/hi are qmin - zp, qmax - zp. */
static inline void onnxq_quantize_tail(size_t first, size_t n, const float* x, float scale,
                                       int32_t zp, float lo, float hi, uint8_t* y) {
    for (size_t i = first; i < n; ++i) y[i] = (uint8_t)onnxq_quantize_one(x[i], scale, lo, hi, zp);
}

/* y[i] = (float)(x[i] - zp) * scale for first <= i < n, x read as int8 when is_signed. */
static inline void onnxq_dequantize_tail(size_t first, size_t n, const uint8_t* x, float scale,
                                         int32_t zp, int is_signed, float* y) {
    for (size_t i = first; i < n; ++i) {
        const int32_t q = is_signed ? (int32_t)(int8_t)x[i] : (int32_t)x[i];
        y[i] = (float)(q - zp) * scale;
    }
}

#endif /* ONNXQ_QUANT_TAIL_H */
