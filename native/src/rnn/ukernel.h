/* Micro-kernel types of the rnn family: the gate activations over n contiguous values (in place
 * allowed). Every kernel performs the fp32 operations of rnn/act.h in the same order, so all ISAs
 * (and the numpy reference) agree to the bit. */
#ifndef ONNXQ_RNN_UKERNEL_H
#define ONNXQ_RNN_UKERNEL_H

#include <stddef.h>

/* y[i] = 1 / (1 + exp(-x[i])). */
typedef void onnxq_sigmoid_f32_ukernel_fn(size_t n, const float* x, float* y);
/* y[i] = copysign((1 - t) / (1 + t), x[i]), t = exp(-2 |x[i]|). */
typedef void onnxq_tanh_f32_ukernel_fn(size_t n, const float* x, float* y);

#endif /* ONNXQ_RNN_UKERNEL_H */
