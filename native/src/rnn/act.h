/* fp32 exp / sigmoid / tanh from +, -, *, / only (the twins of onnxq/kernels/reference/rnn.py). */
#ifndef ONNXQ_RNN_ACT_H
#define ONNXQ_RNN_ACT_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Cody-Waite reduction x = n ln2 + r, degree-6 Taylor polynomial of e^r, exact scaling by 2^n.
 * Input clamped to [-87, 88] so 2^n stays a normal float; about 1 ulp. */
static inline float onnxq_exp_f32(float x) {
    if (x != x) return x;
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float n = nearbyintf(x * (float)1.44269504088896341);
    float r = x - n * (float)0.693145751953125;
    r = r - n * (float)1.42860676533018672e-06;
    float p = (float)(1.0 / 720.0);
    p = p * r + (float)(1.0 / 120.0);
    p = p * r + (float)(1.0 / 24.0);
    p = p * r + (float)(1.0 / 6.0);
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return p * two_n;
}

static inline float onnxq_sigmoid_f32(float x) { return 1.0f / (1.0f + onnxq_exp_f32(-x)); }

static inline float onnxq_tanh_f32(float x) {
    const float t = onnxq_exp_f32(-2.0f * fabsf(x));
    return copysignf((1.0f - t) / (1.0f + t), x);
}

#endif /* ONNXQ_RNN_ACT_H */
