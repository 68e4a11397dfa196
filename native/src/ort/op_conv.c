/* ai.onnxq QLinearConv: ONNX QLinearConv on NHWC uint8 activations, weights packed once.
 *
 *   QLinearConv(x: uint8 [N, H, W, C], x_scale, x_zero_point: uint8, w: int8 [O, C/group, kH, kW],
 *               w_scale: float32 [1 or O], w_zero_point: int8 [1 or O] (all 0),
 *               y_scale, y_zero_point: uint8, B: int32 [O] (optional)) -> uint8 [N, OH, OW, O]
 *
 * Inputs and their order are ONNX QLinearConv's; only the activation layout differs (NHWC, so
 * that chains of onnxq ops need no transposes). Every input but x is a constant, read and packed
 * (onnxq_conv_pack) when the session is created. Attributes, all required: group, strides [2],
 * pads [4] (top, left, bottom, right), dilations [2], and qmin / qmax (the fused ReLU / Clip as
 * a clamp of the uint8 output; 0 and 255 when nothing is fused). The requantisation multiplier
 * is x_scale * w_scale[o] / y_scale in fp32, as onnxruntime computes it; see conv.h.
 *
 * Work is split into tasks run on the session's intra-op threads (see plan_split): bands of
 * output rows (band r of image n is the convolution of the input rows it reads, with the padding
 * that band sees), groups of images, pixel ranges of a direct 1x1 conv, and for layers with few
 * output pixels ranges of output channels. Each output value is computed by the same integer
 * arithmetic whatever the split, so the bytes do not depend on the thread count.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/internal.h"
#include "onnxq/onnxq.h"
#include "ort/ort_kernel.h"

typedef struct conv_kernel {
    onnxq_ort_node node;
    onnxq_conv_params base; /* everything but batch and the input size */
    void* packed;
    size_t packed_size;
} conv_kernel;

static void destroy(void* kernel) {
    conv_kernel* k = kernel;
    if (k == NULL) return;
    free(k->packed);
    free(k);
}

static OrtStatus* fail_free(conv_kernel* k, OrtStatus* s) {
    destroy(k);
    return s;
}

static OrtStatus* create(const OrtKernelInfo* info, onnxq_ort_node node, void** kernel) {
    conv_kernel* k = calloc(1, sizeof *k);
    if (k == NULL) return onnxq_ort_fail_code(ORT_FAIL, &node, "out of memory");
    k->node = node;
    const onnxq_ort_node* nd = &k->node;
    int64_t group, strides[2], pads[4], dilations[2], qmin, qmax;
    OrtStatus* s;
    const int64_t big = 1 << 20;
    if ((s = onnxq_ort_attr_int(info, nd, "group", 1, big, &group)) != NULL ||
        (s = onnxq_ort_attr_ints(info, nd, "strides", 2, 1, big, strides)) != NULL ||
        (s = onnxq_ort_attr_ints(info, nd, "pads", 4, 0, big, pads)) != NULL ||
        (s = onnxq_ort_attr_ints(info, nd, "dilations", 2, 1, big, dilations)) != NULL ||
        (s = onnxq_ort_attr_int(info, nd, "qmin", 0, 255, &qmin)) != NULL ||
        (s = onnxq_ort_attr_int(info, nd, "qmax", qmin, 255, &qmax)) != NULL)
        return fail_free(k, s);
    onnxq_ort_tensor xs, xz, w, ws, wz, ys, yz, b;
    float x_scale, y_scale;
    if ((s = onnxq_ort_constant_scalar(info, nd, 1, "x_scale", ORT_TYPE_FLOAT, &xs)) != NULL ||
        (s = onnxq_ort_scale(nd, &xs, "x_scale", &x_scale)) != NULL ||
        (s = onnxq_ort_constant_scalar(info, nd, 2, "x_zero_point", ORT_TYPE_UINT8, &xz)) != NULL ||
        (s = onnxq_ort_constant(info, nd, 3, "w", ORT_TYPE_INT8, 0, &w)) != NULL ||
        (s = onnxq_ort_constant(info, nd, 4, "w_scale", ORT_TYPE_FLOAT, 0, &ws)) != NULL ||
        (s = onnxq_ort_constant(info, nd, 5, "w_zero_point", ORT_TYPE_INT8, 0, &wz)) != NULL ||
        (s = onnxq_ort_constant_scalar(info, nd, 6, "y_scale", ORT_TYPE_FLOAT, &ys)) != NULL ||
        (s = onnxq_ort_scale(nd, &ys, "y_scale", &y_scale)) != NULL ||
        (s = onnxq_ort_constant_scalar(info, nd, 7, "y_zero_point", ORT_TYPE_UINT8, &yz)) != NULL ||
        (s = onnxq_ort_constant(info, nd, 8, "B", ORT_TYPE_INT32, 1, &b)) != NULL)
        return fail_free(k, s);
    if (w.ndim != 4) return fail_free(k, onnxq_ort_fail(nd, "w has rank %zu, expected 4 (OIHW)", w.ndim));
    size_t out_c = (size_t)w.dims[0];
    if (out_c == 0 || w.count == 0) return fail_free(k, onnxq_ort_fail(nd, "w has no values"));
    if (out_c % (size_t)group != 0)
        return fail_free(k, onnxq_ort_fail(nd, "group %lld does not divide the %zu output channels",
                                           (long long)group, out_c));
    if (ws.count != 1 && ws.count != out_c)
        return fail_free(k, onnxq_ort_fail(nd, "w_scale has %zu values, expected 1 or %zu", ws.count, out_c));
    if (wz.count != 1 && wz.count != out_c)
        return fail_free(k, onnxq_ort_fail(nd, "w_zero_point has %zu values, expected 1 or %zu", wz.count, out_c));
    for (size_t i = 0; i < wz.count; i++)
        if (((const int8_t*)wz.data)[i] != 0)
            return fail_free(k, onnxq_ort_fail(nd, "w_zero_point[%zu] is %d; onnxq's conv takes symmetric "
                                               "weights (zero point 0)", i, ((const int8_t*)wz.data)[i]));
    if (b.data != NULL && b.count != out_c)
        return fail_free(k, onnxq_ort_fail(nd, "B has %zu values, expected %zu", b.count, out_c));
    float* mult = malloc(ws.count * sizeof *mult);
    if (mult == NULL) return fail_free(k, onnxq_ort_fail_code(ORT_FAIL, nd, "out of memory"));
    for (size_t i = 0; i < ws.count; i++) {
        float v = ((const float*)ws.data)[i];
        onnxq_ort_tensor one = ws;
        one.data = (float*)ws.data + i;
        if ((s = onnxq_ort_scale(nd, &one, "w_scale", &v)) != NULL) {
            free(mult);
            return fail_free(k, s);
        }
        mult[i] = (x_scale * v) / y_scale;
    }
    onnxq_conv_params* p = &k->base;
    p->w.out_c = out_c;
    p->w.in_c = (size_t)w.dims[1] * (size_t)group;
    p->w.groups = (size_t)group;
    p->w.kernel_h = (size_t)w.dims[2];
    p->w.kernel_w = (size_t)w.dims[3];
    p->stride_h = (size_t)strides[0], p->stride_w = (size_t)strides[1];
    p->dilation_h = (size_t)dilations[0], p->dilation_w = (size_t)dilations[1];
    p->pad_top = (size_t)pads[0], p->pad_left = (size_t)pads[1];
    p->pad_bottom = (size_t)pads[2], p->pad_right = (size_t)pads[3];
    p->x_zp = (uint8_t)onnxq_ort_zero_point(&xz);
    p->y_zp = (uint8_t)onnxq_ort_zero_point(&yz);
    p->qmin = (uint8_t)qmin, p->qmax = (uint8_t)qmax;
    p->threads = 1; /* parallelism comes from the session's threads (bands of rows) */
    int st = onnxq_conv_packed_size(&p->w, &k->packed_size);
    if (st == 0) {
        k->packed = aligned_alloc(64, (k->packed_size + 63) & ~(size_t)63);
        if (k->packed == NULL) st = ONNXQ_E_NOMEM;
    }
    if (st == 0)
        st = onnxq_conv_pack(&p->w, w.data, w.count, b.data, b.data ? b.count : 0, mult, ws.count,
                             k->packed, k->packed_size);
    free(mult);
    if (st) return fail_free(k, onnxq_ort_kernel_error(nd, st));
    *kernel = k;
    return NULL;
}

/* How one run is split into tasks: row tasks times column chunks (task i is row task
 * i / chunks, output channels of chunk i % chunks).
 *   FLAT:   a direct 1x1 conv (1x1 kernel, stride 1, no padding) is a GEMM on the flattened
 *           pixels, so row task t is the pixels [t * rows, (t + 1) * rows) across images;
 *   BANDS:  bands of `rows` output rows of one image (bands_per_image per image);
 *   IMAGES: `rows` whole images per task (images too small to band).
 * Every task runs at least about TASK_PIXELS output pixels, so that each GEMM call amortises its
 * pass over the packed weights and its set-up; a layer left with few row tasks splits its output
 * channels too (small-M layers on two threads). Each output byte is computed by the same
 * integer arithmetic whatever the split, so the bytes do not depend on the thread count. */
enum { SPLIT_FLAT, SPLIT_BANDS, SPLIT_IMAGES };
#define TASK_PIXELS 128u           /* GEMM rows per row task, at least (when the layer has them) */
#define BANDS_PER_IMAGE 8u         /* row tasks per image of a large layer, at most */
#define MIN_TASKS 4u               /* a 1x1 conv with fewer row tasks splits its channels ... */
#define COL_SPLIT_MACS (1u << 20)  /* ... from this many MACs (tasks for 2 to 4 threads, and
                                      for the others to take over when one is descheduled) */
#define COL_CHUNKS 4u              /* column chunks, at most; of 4 packed 16-column blocks or more */

typedef struct conv_job {
    const conv_kernel* k;
    const onnxq_conv_params* whole;
    const uint8_t* x;
    uint8_t* y;
    size_t out_h, out_w;
    int split;
    size_t rows;            /* per row task: pixels (FLAT), output rows (BANDS), images (IMAGES) */
    size_t bands_per_image; /* BANDS */
    size_t row_tasks, chunks, chunk_cols;
    onnxq_ort_job_error error;
} conv_job;

/* The params and input row range of band [r0, r1): input rows a..b are read (a may be negative
 * and b beyond the image: that part is padding). Returns 0 when the band reads no input row. */
static int band_params(const onnxq_conv_params* whole, size_t r0, size_t r1, onnxq_conv_params* p,
                       size_t* first_row) {
    long long s = (long long)whole->stride_h, d = (long long)whole->dilation_h;
    long long a = (long long)r0 * s - (long long)whole->pad_top;
    long long b = (long long)(r1 - 1) * s - (long long)whole->pad_top + ((long long)whole->w.kernel_h - 1) * d;
    long long last = (long long)whole->in_h - 1;
    long long lo = a > 0 ? a : 0, hi = b < last ? b : last;
    if (hi < lo) return 0;
    *p = *whole;
    p->batch = 1;
    p->in_h = (size_t)(hi - lo + 1);
    p->pad_top = (size_t)(a < 0 ? -a : 0);
    p->pad_bottom = (size_t)(b > last ? b - last : 0);
    *first_row = (size_t)lo;
    return 1;
}

static void run_task(void* data, size_t index) {
    conv_job* job = data;
    const onnxq_conv_params* whole = job->whole;
    const size_t t = index / job->chunks, col0 = index % job->chunks * job->chunk_cols;
    const size_t cols = whole->w.out_c - col0 < job->chunk_cols ? whole->w.out_c - col0 : job->chunk_cols;
    const size_t in_px = whole->w.in_c, out_px = whole->w.out_c;
    const size_t in_img = whole->in_h * whole->in_w * in_px, out_img = job->out_h * job->out_w * out_px;
    onnxq_conv_params p = *whole;
    const uint8_t* x;
    uint8_t* y;
    size_t x_len, y_len;
    if (job->split == SPLIT_FLAT) { /* the pixels [r0, r1) as a 1 x (r1 - r0) x 1 image */
        const size_t total = whole->batch * job->out_h * job->out_w, r0 = t * job->rows;
        const size_t n = total - r0 < job->rows ? total - r0 : job->rows;
        p.batch = 1, p.in_h = n, p.in_w = 1;
        x = job->x + r0 * in_px, y = job->y + r0 * out_px;
        x_len = n * in_px, y_len = n * out_px;
    } else if (job->split == SPLIT_IMAGES) {
        const size_t n0 = t * job->rows, n = whole->batch - n0 < job->rows ? whole->batch - n0 : job->rows;
        p.batch = n;
        x = job->x + n0 * in_img, y = job->y + n0 * out_img;
        x_len = n * in_img, y_len = n * out_img;
    } else {
        const size_t n = t / job->bands_per_image, r0 = t % job->bands_per_image * job->rows;
        const size_t r1 = r0 + job->rows < job->out_h ? r0 + job->rows : job->out_h;
        size_t first = 0;
        if (!band_params(whole, r0, r1, &p, &first)) {
            onnxq_ort_job_fail(&job->error, onnxq_error(ONNXQ_E_INTERNAL, "conv: band [%zu, %zu) "
                                                        "reads no input row", r0, r1));
            return;
        }
        const size_t in_row = whole->in_w * in_px, out_row = job->out_w * out_px;
        x = job->x + n * in_img + first * in_row, y = job->y + n * out_img + r0 * out_row;
        x_len = p.in_h * in_row, y_len = (r1 - r0) * out_row;
    }
    const int st = onnxq_conv_run_cols(&p, job->k->packed, job->k->packed_size, x, x_len, y, y_len, col0, cols);
    onnxq_ort_job_fail(&job->error, st);
}

/* Output rows per band: about BANDS_PER_IMAGE bands per image, none of fewer than TASK_PIXELS
 * pixels or 2^18 MACs, none reading no input row; out_h (one band) when no such split exists. */
static size_t band_rows(const onnxq_conv_params* whole, size_t out_h, size_t out_w) {
    size_t macs_per_row = out_w * whole->w.out_c * (whole->w.in_c / whole->w.groups) *
                          whole->w.kernel_h * whole->w.kernel_w;
    size_t min_rows = macs_per_row == 0 ? out_h : (size_t)(1u << 18) / macs_per_row + 1;
    const size_t px_rows = (TASK_PIXELS + out_w - 1) / out_w;
    if (min_rows < px_rows) min_rows = px_rows;
    size_t rows = (out_h + BANDS_PER_IMAGE - 1) / BANDS_PER_IMAGE;
    if (rows < min_rows) rows = min_rows;
    if (rows >= out_h) return out_h;
    const size_t bands = (out_h + rows - 1) / rows;
    rows = (out_h + bands - 1) / bands; /* bands of equal size (7 + 7 rows, not 10 + 4) */
    for (size_t r0 = 0; r0 < out_h; r0 += rows) {
        onnxq_conv_params p;
        size_t first;
        size_t r1 = r0 + rows > out_h ? out_h : r0 + rows;
        if (!band_params(whole, r0, r1, &p, &first)) return out_h; /* a band all padding */
    }
    return rows;
}

/* Fills the split of job (whole, out_h and out_w set). A direct 1x1 conv with fewer than
 * MIN_TASKS row tasks, and any other GEMM conv with one, also splits its output channels, into
 * ranges of at least 4 packed 16-column blocks. */
static void plan_split(conv_job* job) {
    const onnxq_conv_params* whole = job->whole;
    const size_t px = job->out_h * job->out_w, batch = whole->batch;
    const int direct = whole->w.kernel_h == 1 && whole->w.kernel_w == 1 && whole->stride_h == 1 &&
                       whole->stride_w == 1 && whole->pad_top == 0 && whole->pad_left == 0 &&
                       whole->pad_bottom == 0 && whole->pad_right == 0;
    const int gemm = whole->w.groups == 1; /* not depthwise, not grouped: channels can split */
    if (direct && gemm) {
        const size_t total = batch * px;
        size_t tasks = (total + TASK_PIXELS - 1) / TASK_PIXELS;
        if (tasks > BANDS_PER_IMAGE * batch) tasks = BANDS_PER_IMAGE * batch;
        job->split = SPLIT_FLAT;
        /* multiples of 48 rows: whole steps of the GEMM kernels (6, 8 or 16 rows) */
        job->rows = ((total + tasks - 1) / tasks + 47) / 48 * 48;
        job->row_tasks = (total + job->rows - 1) / job->rows;
    } else {
        job->rows = band_rows(whole, job->out_h, job->out_w);
        job->bands_per_image = (job->out_h + job->rows - 1) / job->rows;
        job->split = SPLIT_BANDS;
        job->row_tasks = batch * job->bands_per_image;
        if (job->bands_per_image == 1 && batch > 1 && gemm) { /* small images: several per task */
            job->split = SPLIT_IMAGES;
            job->rows = (TASK_PIXELS + px - 1) / px;
            job->row_tasks = (batch + job->rows - 1) / job->rows;
        }
    }
    job->chunks = 1;
    job->chunk_cols = whole->w.out_c;
    const double macs = (double)batch * (double)px * (double)whole->w.out_c *
                        (double)whole->w.in_c * (double)(whole->w.kernel_h * whole->w.kernel_w);
    const size_t blocks = (whole->w.out_c + 15) / 16;
    /* An im2col conv builds its A rows again for each range of channels: only a layer with one
     * row task splits them (direct 1x1 convs read A in place). */
    const size_t min_tasks = job->split == SPLIT_FLAT ? MIN_TASKS : 2;
    if (job->row_tasks < min_tasks && gemm && macs >= (double)COL_SPLIT_MACS && blocks >= 8) {
        size_t chunks = (MIN_TASKS + job->row_tasks - 1) / job->row_tasks;
        if (chunks > blocks / 4) chunks = blocks / 4;
        if (chunks > COL_CHUNKS) chunks = COL_CHUNKS;
        job->chunk_cols = (blocks + chunks - 1) / chunks * 16;
        job->chunks = (whole->w.out_c + job->chunk_cols - 1) / job->chunk_cols;
    }
}

static OrtStatus* compute(void* kernel, OrtKernelContext* ctx) {
    const conv_kernel* k = kernel;
    onnxq_ort_tensor x, y;
    OrtStatus* s = onnxq_ort_input(ctx, &k->node, 0, "x", ORT_TYPE_UINT8, &x);
    if (s != NULL) return s;
    if (x.ndim != 4) return onnxq_ort_fail(&k->node, "x has rank %zu, expected 4 (NHWC)", x.ndim);
    if ((size_t)x.dims[3] != k->base.w.in_c)
        return onnxq_ort_fail(&k->node, "x has %lld channels (NHWC last axis), the weights expect %zu",
                              (long long)x.dims[3], k->base.w.in_c);
    onnxq_conv_params whole = k->base;
    whole.batch = (size_t)x.dims[0];
    whole.in_h = (size_t)x.dims[1];
    whole.in_w = (size_t)x.dims[2];
    size_t out_h = 0, out_w = 0;
    int st = onnxq_conv_output_size(&whole, &out_h, &out_w);
    if (st) return onnxq_ort_kernel_error(&k->node, st);
    int64_t dims[4] = {x.dims[0], (int64_t)out_h, (int64_t)out_w, (int64_t)whole.w.out_c};
    if ((s = onnxq_ort_output(ctx, &k->node, 0, dims, 4, ORT_TYPE_UINT8, &y)) != NULL) return s;
    if (x.count == 0 || y.count == 0) return NULL;
    conv_job job;
    memset(&job, 0, sizeof job);
    job.k = k;
    job.whole = &whole;
    job.x = x.data;
    job.y = y.data;
    job.out_h = out_h;
    job.out_w = out_w;
    atomic_init(&job.error.status, 0);
    plan_split(&job);
    if (job.row_tasks * job.chunks == 1) {
        st = onnxq_conv_run(&whole, k->packed, k->packed_size, x.data, x.count, y.data, y.count);
        return st ? onnxq_ort_kernel_error(&k->node, st) : NULL;
    }
    s = onnxq_ort_parallel(ctx, &k->node, run_task, job.row_tasks * job.chunks, &job);
    if (s != NULL) return s;
    return onnxq_ort_job_status(&k->node, &job.error);
}

onnxq_ort_opdef onnxq_ort_op_qlinearconv = {
    .name = "QLinearConv",
    .n_inputs = 9,
    .n_required = 8,
    .input_types = {ORT_TYPE_UINT8, ORT_TYPE_FLOAT, ORT_TYPE_UINT8, ORT_TYPE_INT8, ORT_TYPE_FLOAT,
                    ORT_TYPE_INT8, ORT_TYPE_FLOAT, ORT_TYPE_UINT8, ORT_TYPE_INT32},
    .n_outputs = 1,
    .output_types = {ORT_TYPE_UINT8},
    .create = create,
    .compute = compute,
    .destroy = destroy,
};
