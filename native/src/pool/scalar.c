/* Pooling micro-kernels, portable C (the twins of onnxq/kernels/reference/pool.py). */
#include <math.h>

#include "pool/ukernel.h"

#define DEFINE_MAX(T, SUFFIX)                                                                     \
    void onnxq_maxpool_##SUFFIX##_ukernel_1__scalar(size_t channels, size_t ntaps,                \
                                                    const T* const* taps, T* y) {                 \
        for (size_t c = 0; c < channels; ++c) {                                                   \
            T m = taps[0][c];                                                                     \
            for (size_t k = 1; k < ntaps; ++k) m = taps[k][c] > m ? taps[k][c] : m;               \
            y[c] = m;                                                                             \
        }                                                                                         \
    }

DEFINE_MAX(uint8_t, u8)
DEFINE_MAX(int8_t, s8)

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
