/* The scalar quantized-add step of the eltwise family: the whole scalar kernel and the tail of
 * every vector kernel that has no masked loads. fmaf is correctly rounded, so it gives the same
 * bits as the fused vector multiply-adds (vfmadd, vfmaq_f32). */
#ifndef ONNXQ_ELTWISE_TAIL_H
#define ONNXQ_ELTWISE_TAIL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "eltwise/ukernel.h"

/* round_half_even(clamp(fma(a, ra, fma(*b, rb, fixed)), lo, hi)); b may be NULL (no second term). */
static inline float onnxq_qadd_one(float a, const float* b, const onnxq_qadd_ukernel_params* p) {
    const float t = b != NULL ? fmaf(*b, p->rb, p->fixed) : p->fixed;
    float v = fmaf(a, p->ra, t);
    v = v >= p->lo ? v : p->lo; /* NaN -> lo, like max_ps(v, lo) */
    v = v <= p->hi ? v : p->hi;
    return nearbyintf(v);
}

/* y[i] = qadd(a[i], b[i]) for first <= i < n (b may be NULL); bytes read as int8 when is_signed,
 * else as uint8; the result is inside the type range and stored as its byte. */
static inline void onnxq_qadd_tail(size_t first, size_t n, const uint8_t* a, const uint8_t* b,
                                   uint8_t* y, const onnxq_qadd_ukernel_params* p, int is_signed) {
    for (size_t i = first; i < n; ++i) {
        const float av = is_signed ? (float)(int8_t)a[i] : (float)a[i];
        const float bv = b == NULL ? 0.0f : is_signed ? (float)(int8_t)b[i] : (float)b[i];
        y[i] = (uint8_t)(int32_t)onnxq_qadd_one(av, b != NULL ? &bv : NULL, p);
    }
}

#endif /* ONNXQ_ELTWISE_TAIL_H */
