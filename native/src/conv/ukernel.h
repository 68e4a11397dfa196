/* Micro-kernel types of the conv family (private; kernels are listed in native/kernels.list). */
#ifndef ONNXQ_CONV_UKERNEL_H
#define ONNXQ_CONV_UKERNEL_H

#include <stddef.h>
#include <stdint.h>

#include "common/quantize_scalar.h"

/* Depthwise channels are handled in blocks of 32: weights, biases and scales are padded with
 * zeros to a multiple of 32 channels so that vector loads stay inside the arrays. */
#define ONNXQ_DW_BLOCK 32u

/* Depthwise micro-kernel: one output pixel, all channels.
 *
 * input[t] points at channel 0 of tap t's input pixel (or at a row of x_zp bytes for padding).
 * The sums are exact int32 sums of u8 x times s8 w, started from a bias in which the input zero
 * point is already folded (bias[c] - x_zp * sum_t w[c][t], wrapping), so no zero point is
 * subtracted in the inner loop.
 *
 * Weights are int16, laid out [taps][blocks of 32 channels][2][32]: for tap t and block b, the
 * "even" array holds w at the even channel positions and 0 at the odd ones, the "odd" array the
 * reverse. An int16 multiply-add of pairs (vpmaddwd / vpdpwssd) of the zero-extended input with
 * the even array then yields the even channels' products in int32 lanes, and with the odd array
 * the odd channels' - exact, no saturation, one widening shuffle per tap. bias_eo and scale_eo
 * hold the per-channel values in the same split order ([blocks][2][16]: even channels of the
 * block, then odd ones); bias and scale in natural channel order. */
typedef struct onnxq_dw_args {
    size_t channels;
    size_t taps;
    const int16_t* weights;
    size_t tap_stride; /* int16 elements between two taps' weights (blocks * 64) */
    const int32_t* bias;
    const int32_t* bias_eo;
    const float* scale;
    const float* scale_eo;
    int32_t y_zp;
    float lo; /* qmin - y_zp */
    float hi; /* qmax - y_zp */
} onnxq_dw_args;

typedef void onnxq_dwconv_u8s8_rq_ukernel_fn(const onnxq_dw_args* a, const uint8_t* const* input,
                                            uint8_t* out);

/* Weight of channel c at tap t (even + odd: one of the two is 0). */
static inline int32_t onnxq_dw_weight(const onnxq_dw_args* a, size_t t, size_t c) {
    const int16_t* w = a->weights + t * a->tap_stride + (c / ONNXQ_DW_BLOCK) * 2 * ONNXQ_DW_BLOCK;
    const size_t i = c % ONNXQ_DW_BLOCK;
    return (int32_t)w[i] + (int32_t)w[ONNXQ_DW_BLOCK + i];
}

/* Channels [c0, channels) one at a time (the scalar kernel and the vector kernels' tails). */
static inline void onnxq_dw_channels_scalar(const onnxq_dw_args* a, const uint8_t* const* input,
                                            size_t c0, uint8_t* out) {
    for (size_t c = c0; c < a->channels; c++) {
        uint32_t acc = (uint32_t)a->bias[c]; /* wraps like the vector kernels */
        for (size_t t = 0; t < a->taps; t++) {
            acc += (uint32_t)((int32_t)input[t][c] * onnxq_dw_weight(a, t, c));
        }
        out[c] = (uint8_t)onnxq_requant_one((int32_t)acc, a->scale[c], a->lo, a->hi, a->y_zp);
    }
}

/* Depthwise "row" kernels, for kernels at most 4 wide (dilation_w 1, stride_h 1): the input
 * rows are first repacked into quad rows, then each output pixel costs one u8 x s8 4-way dot
 * product (vpdpbusd) per kernel row and 16 channels instead of kw int16 multiply-adds.
 *
 * Quad row of input row ih: for each output column ox, for each channel c (padded to cpad, a
 * multiple of 16), the 4 bytes x[ih, ox*stride_w - pad_left + j, c] for j = 0..3 (x_zp outside
 * the image, anything for j >= kw: those weights are 0). Layout [out_w][cpad][4]. */
#define ONNXQ_DWROW_CHANNELS 16u

typedef struct onnxq_dwrow_args {
    size_t channels;
    size_t cpad;           /* channels rounded up to ONNXQ_DWROW_CHANNELS */
    size_t kernel_h;
    const int8_t* weights; /* [kernel_h][cpad][4]: w[c][i][j] for j < kw, else 0 */
    const int32_t* bias;   /* [cpad], x_zp folded in as for onnxq_dw_args */
    const float* scale;    /* at least cpad values (zeros past channels) */
    int32_t y_zp;
    float lo;
    float hi;
} onnxq_dwrow_args;

/* count output pixels of one output row: qrows[i] points at the quad row of kernel row i, at the
 * first of the pixels; out receives count * channels bytes. */
typedef void onnxq_dwrow_u8s8_rq_ukernel_fn(const onnxq_dwrow_args* a, const uint8_t* const* qrows,
                                           size_t count, uint8_t* out);

/* Writes count positions of a quad row: src[4 * pos + j] points at the channels of tap j of
 * position pos (or at a row of x_zp bytes); q receives count * cpad * 4 bytes. */
typedef void onnxq_dwrowpack_u8_ukernel_fn(size_t channels, size_t cpad, const uint8_t* const* src,
                                          size_t count, uint8_t* q);

#endif /* ONNXQ_CONV_UKERNEL_H */
