/* LSTM, GRU and RNN cells on the dynamic-quantization matmul (onnxq/dynamic.h), fp32 gates and states.
 *
 * ONNX gate order (LSTM i, o, f, c; GRU z, r, h), default activations, no peepholes, forward
 * direction (reverse the sequence for the backward one). Both matmuls of a cell (X*W^T, H*R^T)
 * run through onnxq_dqmm with s8 weights packed by onnxq_gemm_u8s8_pack from the ONNX [gates*H, I]
 * / [gates*H, H] rows (pack with stride_k = 1, stride_n = row length). GRU needs R split in two
 * packed buffers: the z and r rows (2H) and the h rows (H).
 *
 *   LSTM: g = (X*W^T + (Wb + Rb)) + H*R^T;  i, o, f = sigmoid(g);  c~ = tanh(g_c)
 *         c = f * c_prev + i * c~;  h = o * tanh(c)
 *   GRU:  z = sigmoid(xw_z + hr_z), r = sigmoid(xw_r + hr_r)   (Wb + Rb folded into xw for z, r)
 *         linear_before_reset = 0: h~ = tanh(xw_h + dqmm(r * h_prev, Rh))       (Wbh + Rbh in xw_h)
 *         linear_before_reset = 1: h~ = tanh(xw_h + r * (dqmm(h_prev, Rh) + Rbh)) (Wbh in xw_h)
 *         h = (1 - z) * h~ + z * h_prev
 *
 *   RNN:  h = tanh(X*W^T + (Wb + Rb) + H*R^T)
 *
 * sigmoid(x) = 1 / (1 + exp(-x)) and tanh(x) = copysign((1 - t) / (1 + t), x), t = exp(-2|x|),
 * with an exp made of fp32 +, -, *, / only, so the numpy reference matches to the bit.
 */
#ifndef ONNXQ_RNN_H
#define ONNXQ_RNN_H

#include <stddef.h>
#include <stdint.h>

typedef struct onnxq_lstm_params {
    size_t batch;
    size_t input_size;       /* I */
    size_t hidden;           /* H */
    int mode;                /* onnxq_dq_mode of the run-time activation quantization */
    const void* w_packed;    /* W [4H, I] */
    size_t w_packed_size;
    const float* w_scale;    /* [4H] */
    size_t w_scale_len;      /* = 4H */
    const void* r_packed;    /* R [4H, H] */
    size_t r_packed_size;
    const float* r_scale;    /* [4H] */
    size_t r_scale_len;      /* = 4H */
    const float* w_bias;     /* Wb [4H] or NULL */
    size_t w_bias_len;       /* = 4H when w_bias is given */
    const float* r_bias;     /* Rb [4H] or NULL */
    size_t r_bias_len;       /* = 4H when r_bias is given */
} onnxq_lstm_params;

typedef struct onnxq_gru_params {
    size_t batch;
    size_t input_size;
    size_t hidden;
    int mode;
    int linear_before_reset;
    const void* w_packed;    /* W [3H, I] */
    size_t w_packed_size;
    const float* w_scale;    /* [3H] */
    size_t w_scale_len;      /* = 3H */
    const void* rzr_packed;  /* R rows of z and r [2H, H] */
    size_t rzr_packed_size;
    const void* rh_packed;   /* R rows of h [H, H] */
    size_t rh_packed_size;
    const float* r_scale;    /* [3H] */
    size_t r_scale_len;      /* = 3H */
    const float* w_bias;     /* Wb [3H] or NULL */
    size_t w_bias_len;       /* = 3H when w_bias is given */
    const float* r_bias;     /* Rb [3H] or NULL */
    size_t r_bias_len;       /* = 3H when r_bias is given */
} onnxq_gru_params;

/* The plain (Elman) RNN of ONNX with its default activation: h = tanh(X*W^T + (Wb + Rb) + H*R^T). */
typedef struct onnxq_rnn_params {
    size_t batch;
    size_t input_size;
    size_t hidden;
    int mode;
    const void* w_packed;    /* W [H, I] */
    size_t w_packed_size;
    const float* w_scale;    /* [H] */
    size_t w_scale_len;      /* = H */
    const void* r_packed;    /* R [H, H] */
    size_t r_packed_size;
    const float* r_scale;    /* [H] */
    size_t r_scale_len;      /* = H */
    const float* w_bias;     /* Wb [H] or NULL */
    size_t w_bias_len;       /* = H when w_bias is given */
    const float* r_bias;     /* Rb [H] or NULL */
    size_t r_bias_len;       /* = H when r_bias is given */
} onnxq_rnn_params;

/* Runs seq_len steps over x[seq_len, batch, I] from h0 / c0 [batch, H] (NULL: zeros). y (may be
 * NULL) receives every h [seq_len, batch, H]; h_out / c_out (may be NULL) the last state. A single
 * cell step is seq_len = 1. Every array comes with its length in elements, which must be exactly
 * the size above (checked with the packed buffers, scales and biases before anything runs). */
int onnxq_lstm(const onnxq_lstm_params* p, size_t seq_len, const float* x, size_t x_len,
               const float* h0, size_t h0_len, const float* c0, size_t c0_len, float* y,
               size_t y_len, float* h_out, size_t h_out_len, float* c_out, size_t c_out_len);

int onnxq_gru(const onnxq_gru_params* p, size_t seq_len, const float* x, size_t x_len,
              const float* h0, size_t h0_len, float* y, size_t y_len, float* h_out,
              size_t h_out_len);

int onnxq_rnn(const onnxq_rnn_params* p, size_t seq_len, const float* x, size_t x_len,
              const float* h0, size_t h0_len, float* y, size_t y_len, float* h_out,
              size_t h_out_len);

#endif /* ONNXQ_RNN_H */
