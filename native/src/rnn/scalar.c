/* Gate activations, portable C (rnn/act.h element by element). */
#include "rnn/act.h"
#include "rnn/ukernel.h"

void onnxq_sigmoid_f32_ukernel_1__scalar(size_t n, const float* x, float* y) {
    for (size_t i = 0; i < n; ++i) y[i] = onnxq_sigmoid_f32(x[i]);
}

void onnxq_tanh_f32_ukernel_1__scalar(size_t n, const float* x, float* y) {
    for (size_t i = 0; i < n; ++i) y[i] = onnxq_tanh_f32(x[i]);
}
