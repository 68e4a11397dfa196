/* ai.onnxq QLinearConcat: onnxruntime's QLinearConcat (com.microsoft) arithmetic on uint8 tensors.
 *
 *   QLinearConcat(y_scale: float32 [1], y_zero_point: uint8 [1], x_scales: float32 [n],
 *                 x_zero_points: uint8 [n], x_0, ..., x_{n-1}: uint8 (variadic, n >= 1))
 *       -> uint8: x_0's shape with the extents along `axis` summed
 *
 * com.microsoft's QLinearConcat interleaves (x_i, x_scale_i, x_zero_point_i) after y's qparams.
 * A custom op may make only its last input variadic, and interleaved triples would have to be
 * one heterogeneous variadic input whose types the runtime does not check. Here the qparams come
 * first, as 1-D constants with one value per tensor, and the tensors last, as one homogeneous
 * variadic uint8 input: onnxruntime checks every type, and the count is checked here.
 *
 * Attribute axis (int): the concat axis in the tensors' own layout (3 for NHWC channels);
 * negative counts from the end. Every input but the tensors is a constant, read when the session
 * is created. At run time every tensor must have x_0's rank and extents except along the axis.
 * An input whose scale and zero point equal y's is copied; any other is requantised as
 * onnxruntime does (concat.h). Rows of the dimensions before the axis are split over the
 * session's intra-op threads; the bytes do not depend on the split.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnxq/onnxq.h"
#include "ort/ort_kernel.h"

enum { CONCAT_FIXED = 4, CONCAT_CHUNK = 1 << 16 };

typedef struct concat_qparams {
    float scale;
    int32_t zp;
} concat_qparams;

typedef struct concat_kernel {
    onnxq_ort_node node;
    int64_t axis;
    float y_scale;
    int32_t y_zp;
    size_t n;            /* tensors */
    concat_qparams x[];  /* [n] */
} concat_kernel;

static void destroy(void* kernel) { free(kernel); }

static OrtStatus* create(const OrtKernelInfo* info, onnxq_ort_node node, void** kernel) {
    const onnxq_ort_node* nd = &node;
    size_t count = 0;
    OrtStatus* s = onnxq_ort_api.KernelInfo_GetInputCount(info, &count);
    if (s != NULL) return onnxq_ort_wrap(nd, s, "input count");
    if (count <= CONCAT_FIXED)
        return onnxq_ort_fail(nd, "has %zu inputs, expected y_scale, y_zero_point, x_scales, "
                              "x_zero_points and at least one tensor", count);
    size_t n = count - CONCAT_FIXED;
    int64_t axis;
    onnxq_ort_tensor ys, yz, xs, xz;
    float y_scale;
    if ((s = onnxq_ort_attr_int(info, nd, "axis", -ONNXQ_ORT_MAX_DIMS, ONNXQ_ORT_MAX_DIMS - 1,
                                &axis)) != NULL ||
        (s = onnxq_ort_constant_scalar(info, nd, 0, "y_scale", ORT_TYPE_FLOAT, &ys)) != NULL ||
        (s = onnxq_ort_scale(nd, &ys, "y_scale", &y_scale)) != NULL ||
        (s = onnxq_ort_constant_scalar(info, nd, 1, "y_zero_point", ORT_TYPE_UINT8, &yz)) != NULL ||
        (s = onnxq_ort_constant(info, nd, 2, "x_scales", ORT_TYPE_FLOAT, 0, &xs)) != NULL ||
        (s = onnxq_ort_constant(info, nd, 3, "x_zero_points", ORT_TYPE_UINT8, 0, &xz)) != NULL)
        return s;
    if (xs.ndim != 1 || xs.count != n)
        return onnxq_ort_fail(nd, "x_scales has %zu values (rank %zu), expected one per tensor: %zu "
                              "in a 1-D tensor", xs.count, xs.ndim, n);
    if (xz.ndim != 1 || xz.count != n)
        return onnxq_ort_fail(nd, "x_zero_points has %zu values (rank %zu), expected one per "
                              "tensor: %zu in a 1-D tensor", xz.count, xz.ndim, n);
    concat_kernel* k = calloc(1, sizeof *k + n * sizeof k->x[0]); /* n < input count: no overflow */
    if (k == NULL) return onnxq_ort_fail_code(ORT_FAIL, nd, "out of memory");
    k->node = node;
    k->axis = axis;
    k->y_scale = y_scale;
    k->y_zp = onnxq_ort_zero_point(&yz);
    k->n = n;
    for (size_t i = 0; i < n; i++) {
        char what[40];
        snprintf(what, sizeof what, "x_scales[%zu]", i);
        onnxq_ort_tensor one = xs;
        one.data = (float*)xs.data + i;
        if ((s = onnxq_ort_scale(&k->node, &one, what, &k->x[i].scale)) != NULL) {
            free(k);
            return s;
        }
        k->x[i].zp = ((const uint8_t*)xz.data)[i];
    }
    *kernel = k;
    return NULL;
}

typedef struct concat_job {
    const concat_kernel* k;
    const onnxq_qconcat_input* whole; /* [used]: the tensors with values along the axis */
    onnxq_qconcat_input* slices;      /* [chunks][used]: each chunk's rows of them */
    size_t used, rows, outer, inner, total;
    uint8_t* y;
    int failed;
} concat_job;

static void run_rows(void* data, size_t chunk) {
    concat_job* job = data;
    size_t first = chunk * job->rows;
    size_t rows = job->outer - first < job->rows ? job->outer - first : job->rows;
    onnxq_qconcat_input* in = job->slices + chunk * job->used;
    for (size_t i = 0; i < job->used; i++) {
        size_t row = job->whole[i].axis * job->inner;
        in[i] = job->whole[i];
        in[i].data = (const uint8_t*)job->whole[i].data + first * row;
        in[i].len = rows * row;
    }
    onnxq_qconcat_params p = {rows, job->inner, ONNXQ_U8, job->used, in, job->k->y_scale, job->k->y_zp};
    size_t y_row = job->total * job->inner;
    if (onnxq_qconcat(&p, job->y + first * y_row, rows * y_row) != 0)
        __atomic_store_n(&job->failed, 1, __ATOMIC_RELAXED);
}

/* The output's extents: x[0]'s with the axis extents summed, after checking every tensor
 * against x[0]; *axis becomes the axis counted from the start. */
static OrtStatus* output_dims(const concat_kernel* k, const onnxq_ort_tensor* x, size_t* axis,
                              int64_t* dims) {
    const onnxq_ort_node* nd = &k->node;
    size_t rank = x[0].ndim;
    if (rank == 0) return onnxq_ort_fail(nd, "x_0 is a scalar: a concat needs rank 1 or more");
    int64_t a = k->axis < 0 ? k->axis + (int64_t)rank : k->axis;
    if (a < 0 || a >= (int64_t)rank)
        return onnxq_ort_fail(nd, "attribute axis is %lld, out of range for tensors of rank %zu",
                              (long long)k->axis, rank);
    *axis = (size_t)a;
    memcpy(dims, x[0].dims, rank * sizeof dims[0]);
    for (size_t i = 1; i < k->n; i++) {
        if (x[i].ndim != rank)
            return onnxq_ort_fail(nd, "x_%zu has rank %zu, x_0 has rank %zu", i, x[i].ndim, rank);
        for (size_t d = 0; d < rank; d++) {
            if (d != *axis && x[i].dims[d] != x[0].dims[d])
                return onnxq_ort_fail(nd, "x_%zu has extent %lld along axis %zu, x_0 has %lld (only "
                                      "axis %zu may differ)", i, (long long)x[i].dims[d], d,
                                      (long long)x[0].dims[d], *axis);
        }
        if (__builtin_add_overflow(dims[*axis], x[i].dims[*axis], &dims[*axis]))
            return onnxq_ort_fail(nd, "the output's extent along axis %zu overflows", *axis);
    }
    return NULL;
}

/* Reads the tensors into x, makes the output and concatenates into it (whole: scratch [n]). */
static OrtStatus* run(const concat_kernel* k, OrtKernelContext* ctx, onnxq_ort_tensor* x,
                      onnxq_qconcat_input* whole) {
    const onnxq_ort_node* nd = &k->node;
    OrtStatus* s = NULL;
    for (size_t i = 0; i < k->n && s == NULL; i++) {
        char what[32];
        snprintf(what, sizeof what, "x_%zu", i);
        s = onnxq_ort_input(ctx, nd, CONCAT_FIXED + i, what, ORT_TYPE_UINT8, &x[i]);
    }
    size_t axis = 0;
    int64_t dims[ONNXQ_ORT_MAX_DIMS];
    onnxq_ort_tensor y;
    if (s != NULL || (s = output_dims(k, x, &axis, dims)) != NULL ||
        (s = onnxq_ort_output(ctx, nd, 0, dims, x[0].ndim, ORT_TYPE_UINT8, &y)) != NULL)
        return s;
    if (y.count == 0) return NULL;
    concat_job job = {.k = k, .whole = whole, .outer = 1, .inner = 1, .total = (size_t)dims[axis],
                      .y = y.data};
    for (size_t d = 0; d < x[0].ndim; d++) {
        if (d < axis) job.outer *= (size_t)dims[d];
        if (d > axis) job.inner *= (size_t)dims[d];
    }
    for (size_t i = 0; i < k->n; i++) {
        if (x[i].dims[axis] == 0) continue; /* adds nothing */
        onnxq_qconcat_input in = {x[i].data, x[i].count, (size_t)x[i].dims[axis], k->x[i].scale,
                                  k->x[i].zp};
        whole[job.used++] = in;
    }
    size_t y_row = job.total * job.inner; /* > 0, and outer * y_row = y.count */
    job.rows = y_row >= CONCAT_CHUNK ? 1 : CONCAT_CHUNK / y_row;
    size_t chunks = (job.outer + job.rows - 1) / job.rows;
    job.slices = calloc(chunks, job.used * sizeof *job.slices); /* chunks * used <= y.count */
    if (job.slices == NULL) return onnxq_ort_fail_code(ORT_FAIL, nd, "out of memory");
    s = onnxq_ort_parallel(ctx, nd, run_rows, chunks, &job);
    free(job.slices);
    if (s == NULL && job.failed) { /* checked above: only a bad ISA setting gets here; say why */
        onnxq_qconcat_params p = {job.outer, job.inner, ONNXQ_U8, job.used, whole, k->y_scale, k->y_zp};
        int st = onnxq_qconcat(&p, y.data, y.count);
        s = onnxq_ort_kernel_error(nd, st ? st : ONNXQ_E_INTERNAL);
    }
    return s;
}

static OrtStatus* compute(void* kernel, OrtKernelContext* ctx) {
    const concat_kernel* k = kernel;
    size_t count = 0;
    OrtStatus* s = onnxq_ort_input_count(ctx, &k->node, &count);
    if (s != NULL) return s;
    if (count != CONCAT_FIXED + k->n)
        return onnxq_ort_fail(&k->node, "has %zu inputs at run time, %zu when the session was "
                              "created", count, CONCAT_FIXED + k->n);
    onnxq_ort_tensor* x = malloc(k->n * sizeof *x);
    onnxq_qconcat_input* whole = malloc(k->n * sizeof *whole);
    s = x == NULL || whole == NULL ? onnxq_ort_fail_code(ORT_FAIL, &k->node, "out of memory")
                                   : run(k, ctx, x, whole);
    free(whole);
    free(x);
    return s;
}

onnxq_ort_opdef onnxq_ort_op_qlinearconcat = {
    .name = "QLinearConcat",
    .n_inputs = 5,
    .n_required = 5,
    .variadic_min = 1,
    .input_types = {ORT_TYPE_FLOAT, ORT_TYPE_UINT8, ORT_TYPE_FLOAT, ORT_TYPE_UINT8, ORT_TYPE_UINT8},
    .n_outputs = 1,
    .output_types = {ORT_TYPE_UINT8},
    .create = create,
    .compute = compute,
    .destroy = destroy,
};
