/* ai.onnxq MaxPool and QLinearGlobalAveragePool on NHWC uint8 tensors (pool.h).
 *
 *   MaxPool(x: uint8 [N, H, W, C]) -> uint8 [N, OH, OW, C]
 *       attributes kernel_shape [2], strides [2], pads [4] (top, left, bottom, right),
 *       dilations [2], ceil_mode: ONNX MaxPool, whose output keeps x's scale and zero point.
 *   QLinearGlobalAveragePool(x: uint8 [N, H, W, C], x_scale, x_zero_point: uint8, y_scale,
 *                            y_zero_point: uint8) -> uint8 [N, 1, 1, C]
 *       onnxruntime's QLinearGlobalAveragePool (com.microsoft) arithmetic, NHWC.
 * Images are split over the session's intra-op threads.
 */
#include <stdlib.h>
#include <string.h>

#include "onnxq/onnxq.h"
#include "ort/ort_kernel.h"

typedef struct pool_kernel {
    onnxq_ort_node node;
    onnxq_pool_params base;
    int global;
} pool_kernel;

static void destroy(void* kernel) { free(kernel); }

static OrtStatus* finish(pool_kernel* k, void** kernel) {
    pool_kernel* out = malloc(sizeof *out);
    if (out == NULL) return onnxq_ort_fail_code(ORT_FAIL, &k->node, "out of memory");
    *out = *k;
    *kernel = out;
    return NULL;
}

static OrtStatus* maxpool_create(const OrtKernelInfo* info, onnxq_ort_node node, void** kernel) {
    pool_kernel k;
    memset(&k, 0, sizeof k);
    k.node = node;
    const onnxq_ort_node* nd = &k.node;
    int64_t kernel_shape[2], strides[2], pads[4], dilations[2], ceil_mode;
    const int64_t big = 1 << 20;
    OrtStatus* s;
    if ((s = onnxq_ort_attr_ints(info, nd, "kernel_shape", 2, 1, big, kernel_shape)) != NULL ||
        (s = onnxq_ort_attr_ints(info, nd, "strides", 2, 1, big, strides)) != NULL ||
        (s = onnxq_ort_attr_ints(info, nd, "pads", 4, 0, big, pads)) != NULL ||
        (s = onnxq_ort_attr_ints(info, nd, "dilations", 2, 1, big, dilations)) != NULL ||
        (s = onnxq_ort_attr_int(info, nd, "ceil_mode", 0, 1, &ceil_mode)) != NULL)
        return s;
    onnxq_pool_params* p = &k.base;
    p->kernel_h = (size_t)kernel_shape[0], p->kernel_w = (size_t)kernel_shape[1];
    p->stride_h = (size_t)strides[0], p->stride_w = (size_t)strides[1];
    p->pad_top = (size_t)pads[0], p->pad_left = (size_t)pads[1];
    p->pad_bottom = (size_t)pads[2], p->pad_right = (size_t)pads[3];
    p->dilation_h = (size_t)dilations[0], p->dilation_w = (size_t)dilations[1];
    p->ceil_mode = (int)ceil_mode;
    p->qtype = ONNXQ_U8;
    return finish(&k, kernel);
}

static OrtStatus* gap_create(const OrtKernelInfo* info, onnxq_ort_node node, void** kernel) {
    pool_kernel k;
    memset(&k, 0, sizeof k);
    k.node = node;
    k.global = 1;
    const onnxq_ort_node* nd = &k.node;
    onnxq_ort_tensor xs, xz, ys, yz;
    OrtStatus* s;
    if ((s = onnxq_ort_constant_scalar(info, nd, 1, "x_scale", ORT_TYPE_FLOAT, &xs)) != NULL ||
        (s = onnxq_ort_scale(nd, &xs, "x_scale", &k.base.x_scale)) != NULL ||
        (s = onnxq_ort_constant_scalar(info, nd, 2, "x_zero_point", ORT_TYPE_UINT8, &xz)) != NULL ||
        (s = onnxq_ort_constant_scalar(info, nd, 3, "y_scale", ORT_TYPE_FLOAT, &ys)) != NULL ||
        (s = onnxq_ort_scale(nd, &ys, "y_scale", &k.base.y_scale)) != NULL ||
        (s = onnxq_ort_constant_scalar(info, nd, 4, "y_zero_point", ORT_TYPE_UINT8, &yz)) != NULL)
        return s;
    k.base.x_zp = onnxq_ort_zero_point(&xz);
    k.base.y_zp = onnxq_ort_zero_point(&yz);
    k.base.qtype = ONNXQ_U8;
    k.base.kernel_h = k.base.kernel_w = k.base.stride_h = k.base.stride_w = 1;
    k.base.dilation_h = k.base.dilation_w = 1;
    return finish(&k, kernel);
}

typedef struct pool_job {
    const pool_kernel* k;
    onnxq_pool_params image; /* batch 1 */
    const uint8_t* x;
    uint8_t* y;
    size_t x_image, y_image;
    int failed;
} pool_job;

static void run_image(void* data, size_t n) {
    pool_job* job = data;
    const uint8_t* x = job->x + n * job->x_image;
    uint8_t* y = job->y + n * job->y_image;
    int st = job->k->global ? onnxq_global_avgpool(&job->image, x, job->x_image, y, job->y_image)
                            : onnxq_maxpool(&job->image, x, job->x_image, y, job->y_image);
    if (st != 0) __atomic_store_n(&job->failed, st, __ATOMIC_RELAXED);
}

static OrtStatus* compute(void* kernel, OrtKernelContext* ctx) {
    const pool_kernel* k = kernel;
    onnxq_ort_tensor x, y;
    OrtStatus* s = onnxq_ort_input(ctx, &k->node, 0, "x", ORT_TYPE_UINT8, &x);
    if (s != NULL) return s;
    if (x.ndim != 4) return onnxq_ort_fail(&k->node, "x has rank %zu, expected 4 (NHWC)", x.ndim);
    pool_job job;
    memset(&job, 0, sizeof job);
    job.k = k;
    job.image = k->base;
    job.image.batch = 1;
    job.image.in_h = (size_t)x.dims[1];
    job.image.in_w = (size_t)x.dims[2];
    job.image.channels = (size_t)x.dims[3];
    size_t out_h = 1, out_w = 1;
    if (!k->global) {
        int st = onnxq_pool_output_size(&job.image, &out_h, &out_w);
        if (st) return onnxq_ort_kernel_error(&k->node, st);
    }
    int64_t dims[4] = {x.dims[0], (int64_t)out_h, (int64_t)out_w, x.dims[3]};
    if ((s = onnxq_ort_output(ctx, &k->node, 0, dims, 4, ORT_TYPE_UINT8, &y)) != NULL) return s;
    if (x.count == 0 || y.count == 0) return NULL;
    size_t batch = (size_t)x.dims[0];
    job.x = x.data;
    job.y = y.data;
    job.x_image = x.count / batch;
    job.y_image = y.count / batch;
    if ((s = onnxq_ort_parallel(ctx, &k->node, run_image, batch, &job)) != NULL) return s;
    if (job.failed) { /* say why on this thread (the message is thread-local) */
        onnxq_pool_params whole = job.image;
        whole.batch = batch;
        int st = k->global ? onnxq_global_avgpool(&whole, x.data, x.count, y.data, y.count)
                           : onnxq_maxpool(&whole, x.data, x.count, y.data, y.count);
        return onnxq_ort_kernel_error(&k->node, st ? st : ONNXQ_E_INTERNAL);
    }
    return NULL;
}

onnxq_ort_opdef onnxq_ort_op_maxpool = {
    .name = "MaxPool",
    .n_inputs = 1,
    .n_required = 1,
    .input_types = {ORT_TYPE_UINT8},
    .n_outputs = 1,
    .output_types = {ORT_TYPE_UINT8},
    .create = maxpool_create,
    .compute = compute,
    .destroy = destroy,
};

onnxq_ort_opdef onnxq_ort_op_qlinearglobalaveragepool = {
    .name = "QLinearGlobalAveragePool",
    .n_inputs = 5,
    .n_required = 5,
    .input_types = {ORT_TYPE_UINT8, ORT_TYPE_FLOAT, ORT_TYPE_UINT8, ORT_TYPE_FLOAT, ORT_TYPE_UINT8},
    .n_outputs = 1,
    .output_types = {ORT_TYPE_UINT8},
    .create = gap_create,
    .compute = compute,
    .destroy = destroy,
};
