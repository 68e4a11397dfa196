/* Micro-kernel types of the pool family (NHWC: one output pixel = `channels` contiguous values). */
#ifndef ONNXQ_POOL_UKERNEL_H
#define ONNXQ_POOL_UKERNEL_H

#include <stddef.h>
#include <stdint.h>

/* y[c] = max_k taps[k][c] for c < channels (ntaps >= 1). */
typedef void onnxq_maxpool_u8_ukernel_fn(size_t channels, size_t ntaps,
                                         const uint8_t* const* taps, uint8_t* y);
typedef void onnxq_maxpool_s8_ukernel_fn(size_t channels, size_t ntaps,
                                         const int8_t* const* taps, int8_t* y);

typedef struct onnxq_avgpool_ukernel_params {
    float x_scale;
    int32_t x_zp;
    float count;    /* divisor (>= 1) */
    float y_scale;
    float y_zp;     /* (float)y_zp */
    float lo;       /* (float)type_min */
    float hi;       /* (float)type_max */
} onnxq_avgpool_ukernel_params;

/* s = sum_k x_scale * (float)(taps[k][c] - x_zp) in fp32, in tap order (ntaps >= 0);
 * y[c] = round_half_even(clamp((s / count) / y_scale + y_zp, lo, hi)). */
typedef void onnxq_avgpool_u8_ukernel_fn(size_t channels, size_t ntaps,
                                         const uint8_t* const* taps, uint8_t* y,
                                         const onnxq_avgpool_ukernel_params* p);
typedef void onnxq_avgpool_s8_ukernel_fn(size_t channels, size_t ntaps,
                                         const int8_t* const* taps, int8_t* y,
                                         const onnxq_avgpool_ukernel_params* p);

typedef struct onnxq_gavgpool_ukernel_params {
    int32_t bias;       /* -x_zp * rows */
    float multiplier;   /* x_scale / (y_scale * rows) */
    float lo;           /* (float)(type_min - y_zp) */
    float hi;           /* (float)(type_max - y_zp) */
    int32_t y_zp;
} onnxq_gavgpool_ukernel_params;

/* acc[c] = bias + sum_{r < rows} x[r * stride + c] (int32);
 * y[c] = round_half_even(clamp((float)acc[c] * multiplier, lo, hi)) + y_zp. */
typedef void onnxq_gavgpool_u8_ukernel_fn(size_t channels, size_t rows, const uint8_t* x,
                                          size_t stride, uint8_t* y,
                                          const onnxq_gavgpool_ukernel_params* p);
typedef void onnxq_gavgpool_s8_ukernel_fn(size_t channels, size_t rows, const int8_t* x,
                                          size_t stride, int8_t* y,
                                          const onnxq_gavgpool_ukernel_params* p);

#endif /* ONNXQ_POOL_UKERNEL_H */
