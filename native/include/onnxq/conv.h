/* Quantized 2-D convolution: NHWC u8 activations, s8 weights packed once, u8 output.
 *
 *   acc[n,oh,ow,o] = bias[o] + sum_{kh,kw,i} (x[n,ih,iw,g*I+i] - x_zp) * w[o,i,kh,kw]
 *   y = clamp(round_half_even(clamp((float)acc * scale[o], qmin - y_zp, qmax - y_zp)) + y_zp)
 *
 * with ih = oh*stride_h - pad_top + kh*dilation_h (likewise iw), I = in_c / groups, g the group of
 * o, taps in the padding reading x_zp (contributing 0). scale[o] is the fp32 requantisation
 * multiplier x_scale * w_scale[o] / y_scale (per channel, or one value for all channels).
 *
 * Weights come in ONNX order OIHW (O = out_c, I = in_c / groups) and are packed once by
 * onnxq_conv_pack into a caller-owned buffer of onnxq_conv_packed_size bytes (8-byte aligned at
 * least, 64 best). The packed layout is the same for every ISA. Groups with one input and one
 * output channel each (depthwise) use dedicated kernels; other convolutions run the u8s8 GEMM
 * (gemm.h) on an im2col block of rows (never the whole image), and 1x1 / stride 1 / no padding
 * convolutions feed the NHWC input straight to the GEMM. See docs/kernels.md.
 */
#ifndef ONNXQ_CONV_H
#define ONNXQ_CONV_H

#include <stddef.h>
#include <stdint.h>

/* threads above this are refused (ONNXQ_E_ARG); see onnxq_conv_params.threads. */
typedef enum onnxq_conv_limits {
    ONNXQ_CONV_MAX_THREADS = 64
} onnxq_conv_limits;

/* Everything that does not depend on the image size: what onnxq_conv_pack needs. */
typedef struct onnxq_conv_weights_params {
    size_t out_c;      /* O: output channels (all groups) */
    size_t in_c;       /* C: input channels (all groups); weights have C / groups per group */
    size_t groups;
    size_t kernel_h;
    size_t kernel_w;
} onnxq_conv_weights_params;

typedef struct onnxq_conv_params {
    onnxq_conv_weights_params w;
    size_t batch;
    size_t in_h;
    size_t in_w;
    size_t stride_h;
    size_t stride_w;
    size_t dilation_h;
    size_t dilation_w;
    size_t pad_top;    /* ONNX pads order: top, left, bottom, right */
    size_t pad_left;
    size_t pad_bottom;
    size_t pad_right;
    uint8_t x_zp;
    uint8_t y_zp;
    uint8_t qmin;      /* fused clamp in the quantized domain; 0..255 when nothing is fused */
    uint8_t qmax;
    size_t threads;    /* 0 or 1: the calling thread only; n > 1: up to n threads, at most the
                          CPUs this process may run on (sched_getaffinity), fewer for small
                          layers; the workers are persistent (onnxq_conv_threads_release).
                          n > ONNXQ_CONV_MAX_THREADS: ONNXQ_E_ARG */
} onnxq_conv_params;

/* Output spatial size of params (ONNXQ_E_SHAPE when the kernel is larger than the padded input). */
int onnxq_conv_output_size(const onnxq_conv_params* p, size_t* out_h, size_t* out_w);

/* Bytes of the packed-weights buffer. */
int onnxq_conv_packed_size(const onnxq_conv_weights_params* wp, size_t* size);

/* Packs OIHW s8 weights (O * C/groups * kh * kw values), bias (bias_len = O int32 values, or
 * NULL for 0) and scale (scale_len = 1 or O fp32 multipliers) into packed (packed_size bytes). */
int onnxq_conv_pack(const onnxq_conv_weights_params* wp, const int8_t* weights, size_t weights_len,
                    const int32_t* bias, size_t bias_len, const float* scale, size_t scale_len,
                    void* packed, size_t packed_size);

/* Checks a packed buffer (magic, version, shape, and every section offset and length of its
 * header against the layout of that shape, packed_size and the alignment; the per-group GEMM
 * headers too) and returns its shape in *wp. ONNXQ_E_ARG when anything disagrees. */
int onnxq_conv_packed_shape(const void* packed, size_t packed_size, onnxq_conv_weights_params* wp);

/* How onnxq_conv_run computes params under the active ISA: "depthwise" (per-pixel kernels),
 * "depthwise_rows" (quad-row kernels), "direct_1x1" (GEMM on the input rows) or "im2col" (GEMM
 * on im2col row blocks). */
const char* onnxq_conv_algorithm(const onnxq_conv_params* p);

/* Name of the micro-kernel onnxq_conv_run would use now (the depthwise kernel or the GEMM's), or
 * NULL when the active ISA is unusable. */
const char* onnxq_conv_kernel_name(const onnxq_conv_params* p);

/* y[batch, out_h, out_w, out_c] = conv(x[batch, in_h, in_w, in_c]); x_len / y_len are element
 * counts checked against params, the packed buffer as by onnxq_conv_packed_shape and against
 * p->w. */
int onnxq_conv_run(const onnxq_conv_params* p, const void* packed, size_t packed_size,
                   const uint8_t* x, size_t x_len, uint8_t* y, size_t y_len);

/* onnxq_conv_run for the output channels [col0, col0 + cols) only (the other bytes of y are not
 * written): a layer with few output pixels splits its channels across threads. Each channel is
 * computed exactly as by onnxq_conv_run, so the bytes do not depend on the split. col0 must be a
 * multiple of 16 and cols >= 1; a range other than all channels needs groups = 1 (not depthwise).
 * ONNXQ_E_ARG otherwise. */
int onnxq_conv_run_cols(const onnxq_conv_params* p, const void* packed, size_t packed_size,
                        const uint8_t* x, size_t x_len, uint8_t* y, size_t y_len, size_t col0,
                        size_t cols);

/* Worker threads of the conv family alive now (0 before the first multi-threaded call). */
size_t onnxq_conv_threads_alive(void);

/* Stops and joins every worker thread (waiting for a conv running on another thread to finish
 * first); the next multi-threaded call starts them again. Returns how many were stopped. */
size_t onnxq_conv_threads_release(void);

#endif /* ONNXQ_CONV_H */
