/* Concat of quantized tensors along one axis with requantisation (QLinearConcat).
 *
 * Every input i is viewed as [outer, axis_i, inner] and the output as [outer, sum axis_i, inner].
 * An input whose scale and zero point equal the output's is copied (memcpy); any other one is
 * requantised exactly like onnxruntime's lookup table:
 *   v = x_scale * (float)(x - x_zp);  y = round_half_to_even(clamp(v / y_scale, qmin - y_zp,
 *   qmax - y_zp)) + y_zp                                   (fp32 multiply and division)
 */
#ifndef ONNXQ_CONCAT_H
#define ONNXQ_CONCAT_H

#include <stddef.h>
#include <stdint.h>

typedef struct onnxq_qconcat_input {
    const void* data;   /* [outer, axis, inner] */
    size_t len;         /* elements in data, checked */
    size_t axis;        /* extent along the concat axis (>= 1) */
    float scale;
    int32_t zp;
} onnxq_qconcat_input;

typedef struct onnxq_qconcat_params {
    size_t outer;
    size_t inner;
    int qtype;                          /* onnxq_dtype: ONNXQ_U8 or ONNXQ_S8 (all tensors) */
    size_t n_inputs;
    const onnxq_qconcat_input* inputs;  /* [n_inputs] */
    float y_scale;
    int32_t y_zp;
} onnxq_qconcat_params;

int onnxq_qconcat(const onnxq_qconcat_params* p, void* y, size_t y_len);

#endif /* ONNXQ_CONCAT_H */
