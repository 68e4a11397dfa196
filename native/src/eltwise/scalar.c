/* Quantized add, portable C: fmaf (correctly rounded) per element. */
#include <math.h>

#include "eltwise/ukernel.h"

static inline float qadd_one(float a, const float* b, const onnxq_qadd_ukernel_params* p) {
    const float t = b != NULL ? fmaf(*b, p->rb, p->fixed) : p->fixed;
    float v = fmaf(a, p->ra, t);
    v = v >= p->lo ? v : p->lo; /* NaN -> lo, like max_ps(v, lo) */
    v = v <= p->hi ? v : p->hi;
    return nearbyintf(v);
}

void onnxq_qadd_u8_ukernel_1__scalar(size_t n, const uint8_t* a, const uint8_t* b, uint8_t* y,
                                     const onnxq_qadd_ukernel_params* p) {
    for (size_t i = 0; i < n; ++i) {
        const float bv = b != NULL ? (float)b[i] : 0.0f;
        y[i] = (uint8_t)(int32_t)qadd_one((float)a[i], b != NULL ? &bv : NULL, p);
    }
}

void onnxq_qadd_s8_ukernel_1__scalar(size_t n, const int8_t* a, const int8_t* b, int8_t* y,
                                     const onnxq_qadd_ukernel_params* p) {
    for (size_t i = 0; i < n; ++i) {
        const float bv = b != NULL ? (float)b[i] : 0.0f;
        y[i] = (int8_t)(int32_t)qadd_one((float)a[i], b != NULL ? &bv : NULL, p);
    }
}
