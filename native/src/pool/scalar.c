/* Pooling micro-kernels, portable C (the twins of onnxq/kernels/reference/pool.py). */
#include <math.h>

#include "pool/pool_tail.h"
#include "pool/ukernel.h"

void onnxq_maxpool_u8_ukernel_1__scalar(size_t channels, size_t ntaps, const uint8_t* const* taps,
                                       uint8_t* y) {
    onnxq_maxpool_tail(0, channels, ntaps, taps, y, 0);
}

void onnxq_maxpool_s8_ukernel_1__scalar(size_t channels, size_t ntaps, const int8_t* const* taps,
                                       int8_t* y) {
    onnxq_maxpool_tail(0, channels, ntaps, (const uint8_t* const*)taps, (uint8_t*)y, 1);
}

#define DEFINE_AVG(T, SUFFIX)                                                                     \
    void onnxq_avgpool_##SUFFIX##_ukernel_1__scalar(size_t channels, size_t ntaps,                \
                                                    const T* const* taps, T* y,                   \
                                                    const onnxq_avgpool_ukernel_params* p) {      \
        for (size_t c = 0; c < channels; ++c) {                                                   \
            float s = 0.0f;                                                                       \
            for (size_t k = 0; k < ntaps; ++k)                                                    \
                s = s + p->x_scale * (float)((int32_t)taps[k][c] - p->x_zp);                      \
            float v = (s / p->count) / p->y_scale + p->y_zp;                                      \
            v = v >= p->lo ? v : p->lo; /* NaN -> lo, like max_ps(v, lo) */                      \
            v = v <= p->hi ? v : p->hi;                                                           \
            y[c] = (T)(int32_t)nearbyintf(v);                                                     \
        }                                                                                         \
    }

DEFINE_AVG(uint8_t, u8)
DEFINE_AVG(int8_t, s8)

#define DEFINE_GAVG(T, SUFFIX)                                                                    \
    void onnxq_gavgpool_##SUFFIX##_ukernel_1__scalar(size_t channels, size_t rows, const T* x,    \
                                                     size_t stride, T* y,                         \
                                                     const onnxq_gavgpool_ukernel_params* p) {    \
        for (size_t c = 0; c < channels; ++c) {                                                   \
            int32_t acc = p->bias;                                                                \
            for (size_t r = 0; r < rows; ++r) acc += (int32_t)x[r * stride + c];                  \
            float v = (float)acc * p->multiplier;                                                 \
            v = v >= p->lo ? v : p->lo; /* NaN -> lo, like max_ps(v, lo) */                      \
            v = v <= p->hi ? v : p->hi;                                                           \
            y[c] = (T)((int32_t)nearbyintf(v) + p->y_zp);                                         \
        }                                                                                         \
    }

DEFINE_GAVG(uint8_t, u8)
DEFINE_GAVG(int8_t, s8)
