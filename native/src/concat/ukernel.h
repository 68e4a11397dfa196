/* Micro-kernel types of the concat family: requantise n contiguous values. */
#ifndef ONNXQ_CONCAT_UKERNEL_H
#define ONNXQ_CONCAT_UKERNEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct onnxq_requant_ukernel_params {
    float x_scale;
    int32_t x_zp;
    float y_scale;
    int32_t y_zp;
    float lo;                 /* (float)(type_min - y_zp) */
    float hi;                 /* (float)(type_max - y_zp) */
    const uint8_t* table;     /* 256 entries (the scalar kernel's lookup table), by raw byte */
} onnxq_requant_ukernel_params;

/* y[i] = round_half_even(clamp((x_scale * (float)(x[i] - x_zp)) / y_scale, lo, hi)) + y_zp. */
typedef void onnxq_requant_u8_ukernel_fn(size_t n, const uint8_t* x, uint8_t* y,
                                         const onnxq_requant_ukernel_params* p);
typedef void onnxq_requant_s8_ukernel_fn(size_t n, const int8_t* x, int8_t* y,
                                         const onnxq_requant_ukernel_params* p);

#endif /* ONNXQ_CONCAT_UKERNEL_H */
