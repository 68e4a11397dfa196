/* Scalar conv micro-kernels: always built, the numpy reference's twin. */
#include "conv_internal.h"

void onnxq_dwconv_u8s8_rq_ukernel_c1__scalar(const onnxq_dw_args* a, const uint8_t* const* input,
                                            uint8_t* out) {
    const size_t pairs = (a->taps + 1) / 2;
    for (size_t c = 0; c < a->channels; c++) {
        uint32_t acc = (uint32_t)a->bias[c]; /* wraps like the vector kernels */
        for (size_t p = 0; p < pairs; p++) {
            const int16_t* w = a->weights + p * a->weights_pair_stride + 2 * c;
            const size_t t0 = 2 * p;
            acc += (uint32_t)(((int32_t)input[t0][c] - a->x_zp) * (int32_t)w[0]);
            if (t0 + 1 < a->taps) {
                acc += (uint32_t)(((int32_t)input[t0 + 1][c] - a->x_zp) * (int32_t)w[1]);
            }
        }
        out[c] = onnxq_conv_requant1((int32_t)acc, a->scale[c], a->lo, a->hi, a->y_zp);
    }
}

void onnxq_conv_gemm_u8s8_rq_ukernel_1x1__scalar(size_t m, size_t k, size_t n, const uint8_t* a,
                                                size_t lda, const int8_t* w, const int32_t* bias,
                                                const float* scale, int32_t x_zp, int32_t y_zp,
                                                int32_t qmin, int32_t qmax, uint8_t* c,
                                                size_t ldc) {
    const float lo = (float)(qmin - y_zp);
    const float hi = (float)(qmax - y_zp);
    for (size_t i = 0; i < m; i++) {
        const uint8_t* row = a + i * lda;
        for (size_t j = 0; j < n; j++) {
            const int8_t* wj = w + j * k;
            /* int32 arithmetic wraps like the vector kernels (unsigned to avoid UB). */
            uint32_t acc = (uint32_t)bias[j];
            for (size_t q = 0; q < k; q++) {
                acc += (uint32_t)(((int32_t)row[q] - x_zp) * (int32_t)wj[q]);
            }
            c[i * ldc + j] = onnxq_conv_requant1((int32_t)acc, scale[j], lo, hi, y_zp);
        }
    }
}
