/* ai.onnxq Quantize and Dequantize: the float boundaries of a chain of onnxq ops.
 *
 *   Quantize(x: float32, scale: float32, zero_point: uint8) -> uint8
 *       y = saturate(round_half_even(x / scale) + zero_point)        (ONNX QuantizeLinear)
 *   Dequantize(x: uint8, scale: float32, zero_point: uint8) -> float32
 *       y = (float)(x - zero_point) * scale                           (ONNX DequantizeLinear)
 *
 * scale and zero_point are constants holding one value (activations are per tensor), read when
 * the session is created. Attribute `layout` (string): "same" keeps the element order;
 * Quantize's "nchw_to_nhwc" takes a 4-D NCHW x and writes NHWC (the layout of onnxq's conv and
 * pool ops), Dequantize's "nhwc_to_nchw" the reverse. The arithmetic is onnxq_quantize /
 * onnxq_dequantize (quant.h); the uint8 bytes are transposed in blocks (Quantize: chunks of
 * pixels quantized into a small buffer and transposed from there, no pass over a whole planar
 * copy; Dequantize: before dequantizing), not at all when C or H*W is 1.
 */
#include <stdlib.h>
#include <string.h>

#include "onnxq/onnxq.h"
#include "ort/ort_kernel.h"

#define QUANT_TILE 16384 /* bytes of quantized channel runs transposed at a time */

typedef struct quant_kernel {
    onnxq_ort_node node;
    float scale;
    int32_t zp;
    int transposed; /* layout index: 0 same, 1 nchw<->nhwc */
} quant_kernel;

static OrtStatus* create_common(const OrtKernelInfo* info, onnxq_ort_node node, void** kernel,
                                const char* const* layouts) {
    quant_kernel k;
    memset(&k, 0, sizeof k);
    k.node = node;
    onnxq_ort_tensor scale, zp;
    OrtStatus* s;
    if ((s = onnxq_ort_constant_scalar(info, &k.node, 1, "scale", ORT_TYPE_FLOAT, &scale)) != NULL ||
        (s = onnxq_ort_scale(&k.node, &scale, "scale", &k.scale)) != NULL ||
        (s = onnxq_ort_constant_scalar(info, &k.node, 2, "zero_point", ORT_TYPE_UINT8, &zp)) != NULL ||
        (s = onnxq_ort_attr_choice(info, &k.node, "layout", layouts, &k.transposed)) != NULL)
        return s;
    k.zp = onnxq_ort_zero_point(&zp);
    quant_kernel* out = malloc(sizeof *out);
    if (out == NULL) return onnxq_ort_fail_code(ORT_FAIL, &k.node, "out of memory");
    *out = k;
    *kernel = out;
    return NULL;
}

static void destroy(void* kernel) { free(kernel); }

static onnxq_quant_params plane_params(const quant_kernel* k, size_t n) {
    onnxq_quant_params p;
    memset(&p, 0, sizeof p);
    p.outer = 1;
    p.channels = 1;
    p.inner = n;
    p.scale = &k->scale;
    p.scale_len = 1;
    p.zp = &k->zp;
    p.zp_len = 1;
    p.qtype = ONNXQ_U8;
    return p;
}

/* dst[j, i] = src[i, j] for a rows x cols byte matrix, in 32 x 32 blocks (cache-friendly). */
static void transpose_u8(const uint8_t* src, uint8_t* dst, size_t rows, size_t cols) {
    enum { B = 32 };
    for (size_t i0 = 0; i0 < rows; i0 += B) {
        size_t i1 = i0 + B < rows ? i0 + B : rows;
        for (size_t j0 = 0; j0 < cols; j0 += B) {
            size_t j1 = j0 + B < cols ? j0 + B : cols;
            for (size_t i = i0; i < i1; i++)
                for (size_t j = j0; j < j1; j++) dst[j * rows + i] = src[i * cols + j];
        }
    }
}

/* The input, the output of its shape (NCHW <-> NHWC when transposed), and [N, C, HW]. */
static OrtStatus* io(const quant_kernel* k, OrtKernelContext* ctx, int in_type, int out_type,
                     int to_nhwc, onnxq_ort_tensor* x, onnxq_ort_tensor* y, size_t* nchw) {
    OrtStatus* s = onnxq_ort_input(ctx, &k->node, 0, "x", in_type, x);
    if (s != NULL) return s;
    int64_t dims[ONNXQ_ORT_MAX_DIMS];
    memcpy(dims, x->dims, x->ndim * sizeof dims[0]);
    if (k->transposed) {
        if (x->ndim != 4) return onnxq_ort_fail(&k->node, "x has rank %zu, the layout change needs 4", x->ndim);
        /* N C H W -> N H W C, or N H W C -> N C H W */
        if (to_nhwc) {
            nchw[0] = (size_t)x->dims[0], nchw[1] = (size_t)x->dims[1];
            nchw[2] = (size_t)x->dims[2] * (size_t)x->dims[3];
            dims[1] = x->dims[2], dims[2] = x->dims[3], dims[3] = x->dims[1];
        } else {
            nchw[0] = (size_t)x->dims[0], nchw[1] = (size_t)x->dims[3];
            nchw[2] = (size_t)x->dims[1] * (size_t)x->dims[2];
            dims[1] = x->dims[3], dims[2] = x->dims[1], dims[3] = x->dims[2];
        }
    }
    return onnxq_ort_output(ctx, &k->node, 0, dims, x->ndim, out_type, y);
}

/* ---- Quantize ----------------------------------------------------------------------------- */

static OrtStatus* quantize_create(const OrtKernelInfo* info, onnxq_ort_node node, void** kernel) {
    static const char* const layouts[] = {"same", "nchw_to_nhwc", NULL};
    return create_common(info, node, kernel, layouts);
}

static OrtStatus* quantize_compute(void* kernel, OrtKernelContext* ctx) {
    const quant_kernel* k = kernel;
    onnxq_ort_tensor x, y;
    size_t shape[3] = {0, 0, 0};
    OrtStatus* s = io(k, ctx, ORT_TYPE_FLOAT, ORT_TYPE_UINT8, 1, &x, &y, shape);
    if (s != NULL || x.count == 0) return s;
    if (!k->transposed) {
        onnxq_quant_params p = plane_params(k, x.count);
        int st = onnxq_quantize(&p, x.data, x.count, y.data, y.count);
        return st ? onnxq_ort_kernel_error(&k->node, st) : NULL;
    }
    size_t c = shape[1], hw = shape[2];
    if (c == 1 || hw == 1) { /* NCHW and NHWC hold the same bytes */
        onnxq_quant_params p = plane_params(k, x.count);
        int st = onnxq_quantize(&p, x.data, x.count, y.data, y.count);
        return st ? onnxq_ort_kernel_error(&k->node, st) : NULL;
    }
    /* Pixel chunks of every image: each channel's run of the chunk quantized into a buffer of
     * QUANT_TILE bytes (cache-resident), then transposed into the NHWC output. */
    uint8_t tile[QUANT_TILE];
    size_t chunk = QUANT_TILE / c;
    if (chunk == 0) chunk = 1;
    uint8_t* heap = NULL;
    uint8_t* buf = tile;
    if (c > QUANT_TILE) { /* more channels than the tile holds: one pixel at a time */
        heap = malloc(c);
        if (heap == NULL) return onnxq_ort_fail_code(ORT_FAIL, &k->node, "out of memory");
        buf = heap;
    }
    const float* xf = x.data;
    uint8_t* yb = y.data;
    int st = 0;
    for (size_t n = 0; n < shape[0] && st == 0; n++) {
        for (size_t p0 = 0; p0 < hw && st == 0; p0 += chunk) {
            const size_t cnt = hw - p0 < chunk ? hw - p0 : chunk;
            onnxq_quant_params pc = plane_params(k, cnt);
            for (size_t ch = 0; ch < c && st == 0; ch++)
                st = onnxq_quantize(&pc, xf + (n * c + ch) * hw + p0, cnt, buf + ch * cnt, cnt);
            if (st == 0) transpose_u8(buf, yb + (n * hw + p0) * c, c, cnt);
        }
    }
    free(heap);
    return st ? onnxq_ort_kernel_error(&k->node, st) : NULL;
}

onnxq_ort_opdef onnxq_ort_op_quantize = {
    .name = "Quantize",
    .n_inputs = 3,
    .n_required = 3,
    .input_types = {ORT_TYPE_FLOAT, ORT_TYPE_FLOAT, ORT_TYPE_UINT8},
    .n_outputs = 1,
    .output_types = {ORT_TYPE_UINT8},
    .create = quantize_create,
    .compute = quantize_compute,
    .destroy = destroy,
};

/* ---- Dequantize --------------------------------------------------------------------------- */

static OrtStatus* dequantize_create(const OrtKernelInfo* info, onnxq_ort_node node, void** kernel) {
    static const char* const layouts[] = {"same", "nhwc_to_nchw", NULL};
    return create_common(info, node, kernel, layouts);
}

static OrtStatus* dequantize_compute(void* kernel, OrtKernelContext* ctx) {
    const quant_kernel* k = kernel;
    onnxq_ort_tensor x, y;
    size_t shape[3] = {0, 0, 0};
    OrtStatus* s = io(k, ctx, ORT_TYPE_UINT8, ORT_TYPE_FLOAT, 0, &x, &y, shape);
    if (s != NULL || x.count == 0) return s;
    if (!k->transposed) {
        onnxq_quant_params p = plane_params(k, x.count);
        int st = onnxq_dequantize(&p, x.data, x.count, y.data, y.count);
        return st ? onnxq_ort_kernel_error(&k->node, st) : NULL;
    }
    size_t c = shape[1], hw = shape[2];
    onnxq_quant_params p = plane_params(k, x.count);
    if (c == 1 || hw == 1) { /* NHWC and NCHW hold the same bytes */
        int st = onnxq_dequantize(&p, x.data, x.count, y.data, y.count);
        return st ? onnxq_ort_kernel_error(&k->node, st) : NULL;
    }
    uint8_t* planar = malloc(x.count);
    if (planar == NULL) return onnxq_ort_fail_code(ORT_FAIL, &k->node, "out of memory");
    for (size_t n = 0; n < shape[0]; n++) /* [HW, C] -> [C, HW] */
        transpose_u8((const uint8_t*)x.data + n * c * hw, planar + n * c * hw, hw, c);
    int st = onnxq_dequantize(&p, planar, x.count, y.data, y.count);
    free(planar);
    return st ? onnxq_ort_kernel_error(&k->node, st) : NULL;
}

onnxq_ort_opdef onnxq_ort_op_dequantize = {
    .name = "Dequantize",
    .n_inputs = 3,
    .n_required = 3,
    .input_types = {ORT_TYPE_UINT8, ORT_TYPE_FLOAT, ORT_TYPE_UINT8},
    .n_outputs = 1,
    .output_types = {ORT_TYPE_FLOAT},
    .create = dequantize_create,
    .compute = dequantize_compute,
    .destroy = destroy,
};
