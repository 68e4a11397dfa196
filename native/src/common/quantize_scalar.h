/* Scalar quantize / requantize steps shared by all families and ISAs (tails of vector loops).
 *
 * They mirror the vector instructions exactly: max(v, lo) returns lo for NaN like maxps, the
 * conversion rounds half to even like cvtps2dq under the default MXCSR.
 */
#ifndef ONNXQ_QUANTIZE_SCALAR_H
#define ONNXQ_QUANTIZE_SCALAR_H

#include <math.h>
#include <stdint.h>

/* clamp(v, lo, hi) with NaN -> lo, rounded half to even (lo, hi integral floats). */
static inline int32_t onnxq_clamp_round(float v, float lo, float hi) {
    v = v >= lo ? v : lo;
    v = v <= hi ? v : hi;
    return (int32_t)nearbyintf(v);
}

/* ONNX QuantizeLinear of one value: lo = qmin - zp, hi = qmax - zp. */
static inline int32_t onnxq_quantize_one(float x, float scale, float lo, float hi, int32_t zp) {
    return onnxq_clamp_round(x / scale, lo, hi) + zp;
}

/* MLAS requantisation of one int32 accumulator: lo = qmin - zp, hi = qmax - zp. */
static inline int32_t onnxq_requant_one(int32_t acc, float scale, float lo, float hi, int32_t zp) {
    return onnxq_clamp_round((float)acc * scale, lo, hi) + zp;
}

#endif /* ONNXQ_QUANTIZE_SCALAR_H */
