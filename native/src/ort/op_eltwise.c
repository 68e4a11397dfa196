/* ai.onnxq QLinearAdd: onnxruntime's QLinearAdd (com.microsoft) on two uint8 tensors of one shape.
 *
 *   QLinearAdd(a: uint8, a_scale, a_zero_point: uint8, b: uint8, b_scale, b_zero_point: uint8,
 *              y_scale, y_zero_point: uint8) -> uint8 of a's shape
 *
 * Elementwise, so any layout: two NHWC tensors give an NHWC sum. Scales and zero points are
 * constants with one value each (read when the session is created). Attributes qmin / qmax: the
 * fused ReLU as a clamp of the output (0 and 255 when nothing is fused). The arithmetic is
 * onnxq_qadd (eltwise.h), onnxruntime's x86 QLinearAdd bit for bit; the elements are split in
 * chunks run on the session's intra-op threads.
 */
#include <stdlib.h>
#include <string.h>

#include "onnxq/onnxq.h"
#include "ort/ort_kernel.h"

enum { ADD_CHUNK = 1 << 16 };

typedef struct add_kernel {
    onnxq_ort_node node;
    onnxq_qadd_params base;
} add_kernel;

static void destroy(void* kernel) { free(kernel); }

static OrtStatus* create(const OrtKernelInfo* info, onnxq_ort_node node, void** kernel) {
    add_kernel k;
    memset(&k, 0, sizeof k);
    k.node = node;
    const onnxq_ort_node* nd = &k.node;
    onnxq_ort_tensor as, az, bs, bz, ys, yz;
    int64_t qmin, qmax;
    OrtStatus* s;
    if ((s = onnxq_ort_constant_scalar(info, nd, 1, "a_scale", ORT_TYPE_FLOAT, &as)) != NULL ||
        (s = onnxq_ort_scale(nd, &as, "a_scale", &k.base.a_scale)) != NULL ||
        (s = onnxq_ort_constant_scalar(info, nd, 2, "a_zero_point", ORT_TYPE_UINT8, &az)) != NULL ||
        (s = onnxq_ort_constant_scalar(info, nd, 4, "b_scale", ORT_TYPE_FLOAT, &bs)) != NULL ||
        (s = onnxq_ort_scale(nd, &bs, "b_scale", &k.base.b_scale)) != NULL ||
        (s = onnxq_ort_constant_scalar(info, nd, 5, "b_zero_point", ORT_TYPE_UINT8, &bz)) != NULL ||
        (s = onnxq_ort_constant_scalar(info, nd, 6, "y_scale", ORT_TYPE_FLOAT, &ys)) != NULL ||
        (s = onnxq_ort_scale(nd, &ys, "y_scale", &k.base.y_scale)) != NULL ||
        (s = onnxq_ort_constant_scalar(info, nd, 7, "y_zero_point", ORT_TYPE_UINT8, &yz)) != NULL ||
        (s = onnxq_ort_attr_int(info, nd, "qmin", 0, 255, &qmin)) != NULL ||
        (s = onnxq_ort_attr_int(info, nd, "qmax", qmin, 255, &qmax)) != NULL)
        return s;
    k.base.qtype = ONNXQ_U8;
    k.base.a_bcast = ONNXQ_BCAST_FULL;
    k.base.b_bcast = ONNXQ_BCAST_FULL;
    k.base.a_zp = onnxq_ort_zero_point(&az);
    k.base.b_zp = onnxq_ort_zero_point(&bz);
    k.base.y_zp = onnxq_ort_zero_point(&yz);
    k.base.qmin = (int32_t)qmin;
    k.base.qmax = (int32_t)qmax;
    add_kernel* out = malloc(sizeof *out);
    if (out == NULL) return onnxq_ort_fail_code(ORT_FAIL, nd, "out of memory");
    *out = k;
    *kernel = out;
    return NULL;
}

typedef struct add_job {
    const add_kernel* k;
    const uint8_t* a;
    const uint8_t* b;
    uint8_t* y;
    size_t count;
    int failed;
} add_job;

static void run_chunk(void* data, size_t i) {
    add_job* job = data;
    size_t begin = i * ADD_CHUNK, n = job->count - begin < ADD_CHUNK ? job->count - begin : ADD_CHUNK;
    onnxq_qadd_params p = job->k->base;
    p.outer = 1;
    p.inner = n;
    if (onnxq_qadd(&p, job->a + begin, n, job->b + begin, n, job->y + begin, n) != 0)
        __atomic_store_n(&job->failed, 1, __ATOMIC_RELAXED);
}

static OrtStatus* compute(void* kernel, OrtKernelContext* ctx) {
    const add_kernel* k = kernel;
    onnxq_ort_tensor a, b, y;
    OrtStatus* s;
    if ((s = onnxq_ort_input(ctx, &k->node, 0, "a", ORT_TYPE_UINT8, &a)) != NULL ||
        (s = onnxq_ort_input(ctx, &k->node, 3, "b", ORT_TYPE_UINT8, &b)) != NULL)
        return s;
    if (a.ndim != b.ndim || memcmp(a.dims, b.dims, a.ndim * sizeof a.dims[0]) != 0)
        return onnxq_ort_fail(&k->node, "a and b have different shapes (onnxq's add takes one shape)");
    if ((s = onnxq_ort_output(ctx, &k->node, 0, a.dims, a.ndim, ORT_TYPE_UINT8, &y)) != NULL) return s;
    if (a.count == 0) return NULL;
    add_job job = {k, a.data, b.data, y.data, a.count, 0};
    size_t chunks = (a.count + ADD_CHUNK - 1) / ADD_CHUNK;
    if ((s = onnxq_ort_parallel(ctx, &k->node, run_chunk, chunks, &job)) != NULL) return s;
    if (job.failed) { /* validated above: only a bad ISA setting gets here; say it on this thread */
        onnxq_qadd_params p = k->base;
        p.outer = 1;
        p.inner = a.count;
        int st = onnxq_qadd(&p, a.data, a.count, b.data, b.count, y.data, y.count);
        return onnxq_ort_kernel_error(&k->node, st ? st : ONNXQ_E_INTERNAL);
    }
    return NULL;
}

onnxq_ort_opdef onnxq_ort_op_qlinearadd = {
    .name = "QLinearAdd",
    .n_inputs = 8,
    .n_required = 8,
    .input_types = {ORT_TYPE_UINT8, ORT_TYPE_FLOAT, ORT_TYPE_UINT8, ORT_TYPE_UINT8, ORT_TYPE_FLOAT,
                    ORT_TYPE_UINT8, ORT_TYPE_FLOAT, ORT_TYPE_UINT8},
    .n_outputs = 1,
    .output_types = {ORT_TYPE_UINT8},
    .create = create,
    .compute = compute,
    .destroy = destroy,
};
