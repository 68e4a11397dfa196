/* Max, average and global-average pooling of NHWC u8/s8 tensors.
 *
 * Output extent of an axis: (in + pad_begin + pad_end - (dilation * (kernel - 1) + 1)) / stride + 1
 * (ONNXQ_E_SHAPE when the kernel is larger than the padded input); with ceil_mode the division
 * rounds up, minus one window when the last one would start at or after in + pad_begin (as
 * onnxruntime). Taps outside the image (padding, or past it with ceil_mode) are skipped.
 *
 * max:     y = max of the taps (same scale and zero point as x; the type minimum if no tap).
 * avg:     onnxruntime's QLinearAveragePool: s = sum over taps (h, then w) of
 *          x_scale * (float)(x - x_zp) in fp32; s /= (float)count (count = kernel_h * kernel_w
 *          with count_include_pad, else the taps inside the image, at least 1);
 *          y = saturate(round_half_to_even(s / y_scale + (float)y_zp)).
 *          A kernel covering the whole unpadded image (no pads, no dilation) takes the global path.
 * global:  onnxruntime's QLinearGlobalAveragePool: acc = sum(x) - x_zp * H * W (int32),
 *          m = x_scale / (y_scale * (float)(H * W)),
 *          y = round_half_to_even(clamp((float)acc * m, qmin - y_zp, qmax - y_zp)) + y_zp.
 */
#ifndef ONNXQ_POOL_H
#define ONNXQ_POOL_H

#include <stddef.h>
#include <stdint.h>

typedef struct onnxq_pool_params {
    size_t batch;
    size_t in_h;
    size_t in_w;
    size_t channels;
    size_t kernel_h;          /* max / avg only */
    size_t kernel_w;
    size_t stride_h;
    size_t stride_w;
    size_t dilation_h;
    size_t dilation_w;
    size_t pad_top;           /* ONNX pads order: top, left, bottom, right */
    size_t pad_left;
    size_t pad_bottom;
    size_t pad_right;
    int qtype;                /* onnxq_dtype: ONNXQ_U8 or ONNXQ_S8 (x and y) */
    int count_include_pad;    /* avg only */
    float x_scale;            /* avg / global only */
    float y_scale;
    int32_t x_zp;
    int32_t y_zp;
    int ceil_mode;            /* max / avg: round the output extent up (ONNX ceil_mode) */
} onnxq_pool_params;

/* Output spatial size of a max / avg pool (ONNXQ_E_SHAPE when the kernel exceeds the input). */
int onnxq_pool_output_size(const onnxq_pool_params* p, size_t* out_h, size_t* out_w);

/* y[batch, out_h, out_w, channels] = pool(x[batch, in_h, in_w, channels]); lengths in elements. */
int onnxq_maxpool(const onnxq_pool_params* p, const void* x, size_t x_len, void* y, size_t y_len);
int onnxq_avgpool(const onnxq_pool_params* p, const void* x, size_t x_len, void* y, size_t y_len);

/* y[batch, channels] = global average of x[batch, in_h, in_w, channels] (kernel/pads ignored). */
int onnxq_global_avgpool(const onnxq_pool_params* p, const void* x, size_t x_len, void* y,
                         size_t y_len);

#endif /* ONNXQ_POOL_H */
