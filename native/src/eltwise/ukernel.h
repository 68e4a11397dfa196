/* Micro-kernel types of the eltwise family (quantized add). */
#ifndef ONNXQ_ELTWISE_UKERNEL_H
#define ONNXQ_ELTWISE_UKERNEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct onnxq_qadd_ukernel_params {
    float ra;     /* scale of the first operand / y_scale */
    float rb;     /* scale of the second operand / y_scale (unused when b is NULL) */
    float fixed;  /* y_zp - fma(ra, a_zp, rb * b_zp), a constant operand already folded in */
    float lo;     /* (float)qmin */
    float hi;     /* (float)qmax */
} onnxq_qadd_ukernel_params;

/* y[i] = round_half_even(clamp(fma(a[i], ra, fma(b[i], rb, fixed)), lo, hi)) for i < n;
 * when b is NULL: y[i] = round_half_even(clamp(fma(a[i], ra, fixed), lo, hi)). */
typedef void onnxq_qadd_u8_ukernel_fn(size_t n, const uint8_t* a, const uint8_t* b, uint8_t* y,
                                      const onnxq_qadd_ukernel_params* p);
typedef void onnxq_qadd_s8_ukernel_fn(size_t n, const int8_t* a, const int8_t* b, int8_t* y,
                                      const onnxq_qadd_ukernel_params* p);

#endif /* ONNXQ_ELTWISE_UKERNEL_H */
