/* Private to native/src/conv: packed-weights layout and micro-kernel signatures. */
#ifndef ONNXQ_CONV_INTERNAL_H
#define ONNXQ_CONV_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define ONNXQ_CONV_MAGIC 0x5643514fu /* "OQCV" */
#define ONNXQ_CONV_VERSION 1u
#define ONNXQ_CONV_ALIGN 64u
/* Depthwise weights are padded to this many channels so vector loads of weights stay inside. */
#define ONNXQ_DW_CHANNEL_PAD 32u

enum onnxq_conv_kind {
    ONNXQ_CONV_KIND_DEPTHWISE = 1, /* groups == in_c == out_c */
    ONNXQ_CONV_KIND_GEMM = 2,      /* im2col rows x packed GEMM weights, per group */
};

/* Header at the start of every packed buffer; offsets are in bytes from the buffer start. */
typedef struct onnxq_conv_packed {
    uint32_t magic;
    uint32_t version;
    uint32_t kind;
    uint32_t isa;          /* ISA the weights were packed for */
    uint64_t out_c, in_c, groups, kernel_h, kernel_w;
    uint64_t total_size;
    uint64_t bias_off;     /* int32[out_c] */
    uint64_t scale_off;    /* float[out_c] (a scalar scale is broadcast at packing) */
    uint64_t weights_off;  /* kind-specific weights */
    uint64_t group_stride; /* GEMM kind: bytes between two groups' packed weights */
} onnxq_conv_packed;

/* Depthwise micro-kernel: one output pixel, all channels.
 * input[t] points at channel 0 of the tap's input pixel (or at a row of x_zp bytes), taps are
 * processed in pairs; weights are int16 laid out [ceil(taps/2)][channels padded][2] (a missing
 * odd tap has weight 0); out receives `channels` bytes. */
typedef struct onnxq_dw_args {
    size_t channels;
    size_t taps;
    const int16_t* weights;
    size_t weights_pair_stride; /* int16 elements between two tap pairs */
    const int32_t* bias;
    const float* scale;
    int32_t x_zp;
    int32_t y_zp;
    float lo; /* qmin - y_zp */
    float hi; /* qmax - y_zp */
    int32_t qmin;
    int32_t qmax;
} onnxq_dw_args;

typedef void (*onnxq_dw_ukernel_fn)(const onnxq_dw_args* a, const uint8_t* const* input,
                                    uint8_t* out);

void onnxq_dwconv_u8s8_rq_ukernel_c1__scalar(const onnxq_dw_args* a, const uint8_t* const* input,
                                            uint8_t* out);
void onnxq_dwconv_u8s8_rq_ukernel_c16__avx2(const onnxq_dw_args* a, const uint8_t* const* input,
                                           uint8_t* out);
void onnxq_dwconv_u8s8_rq_ukernel_c16__avx512vnni(const onnxq_dw_args* a,
                                                 const uint8_t* const* input, uint8_t* out);
void onnxq_dwconv_u8s8_rq_ukernel_c16__neon(const onnxq_dw_args* a, const uint8_t* const* input,
                                           uint8_t* out);

/* Scalar GEMM over im2col rows (the oracle's twin for non-depthwise convolutions):
 * weights [out_g][k] s8 row-major per group. */
void onnxq_conv_gemm_u8s8_rq_ukernel_1x1__scalar(size_t m, size_t k, size_t n, const uint8_t* a,
                                                size_t lda, const int8_t* w, const int32_t* bias,
                                                const float* scale, int32_t x_zp, int32_t y_zp,
                                                int32_t qmin, int32_t qmax, uint8_t* c,
                                                size_t ldc);

/* Copies rows [m0, m0 + m) of the im2col matrix of one group into a (row stride k). */
typedef struct onnxq_im2col_geom {
    size_t in_h, in_w, in_c, out_h, out_w;
    size_t kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left;
    size_t group_c; /* channels of one group = bytes per tap */
} onnxq_im2col_geom;

void onnxq_conv_im2col_rows(const onnxq_im2col_geom* g, const uint8_t* x_image, size_t c0,
                            size_t m0, size_t m, uint8_t x_zp, uint8_t* a);

/* Scalar MLAS requantisation of one accumulator. */
static inline uint8_t onnxq_conv_requant1(int32_t acc, float scale, float lo, float hi,
                                          int32_t zp) {
    float v = (float)acc * scale;
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    return (uint8_t)((int32_t)nearbyintf(v) + zp);
}

#endif /* ONNXQ_CONV_INTERNAL_H */
