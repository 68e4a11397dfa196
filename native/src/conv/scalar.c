/* Scalar conv micro-kernels: always built, the numpy reference's twin. */
#include "conv/ukernel.h"
#include "onnxq_kernels.h" /* generated declarations */

void onnxq_dwconv_u8s8_rq_ukernel_c1__scalar(const onnxq_dw_args* a, const uint8_t* const* input,
                                            uint8_t* out) {
    onnxq_dw_channels_scalar(a, input, 0, out);
}

void onnxq_dwrowpack_u8_ukernel_c1__scalar(size_t channels, size_t cpad, const uint8_t* const* src,
                                          size_t count, uint8_t* q) {
    for (size_t pos = 0; pos < count; pos++, q += 4 * cpad) {
        for (size_t c = 0; c < cpad; c++) {
            for (size_t j = 0; j < 4; j++) q[4 * c + j] = c < channels ? src[4 * pos + j][c] : 0;
        }
    }
}

void onnxq_dwrow_u8s8_rq_ukernel_c1__scalar(const onnxq_dwrow_args* a, const uint8_t* const* qrows,
                                           size_t count, uint8_t* out) {
    for (size_t pos = 0; pos < count; pos++, out += a->channels) {
        for (size_t c = 0; c < a->channels; c++) {
            uint32_t acc = (uint32_t)a->bias[c]; /* wraps like the vector kernels */
            for (size_t i = 0; i < a->kernel_h; i++) {
                const uint8_t* x = qrows[i] + 4 * (pos * a->cpad + c);
                const int8_t* w = a->weights + 4 * (i * a->cpad + c);
                for (size_t j = 0; j < 4; j++) acc += (uint32_t)((int32_t)x[j] * (int32_t)w[j]);
            }
            out[c] = (uint8_t)onnxq_requant_one((int32_t)acc, a->scale[c], a->lo, a->hi, a->y_zp);
        }
    }
}
