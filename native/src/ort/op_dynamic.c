/* ai.onnxq DynamicMatMul: fp32 activations quantized at run time times int8 weights (dynamic.h).
 *
 *   DynamicMatMul(a: float32 [..., K], w: int8 [K, N], w_scale: float32 [1 or N],
 *                 w_zero_point: int8 [1 or N] (all 0), B: float32 [N] (optional)) -> float32 [..., N]
 *
 * onnxruntime's DynamicQuantizeMatMul on onnxq's kernels: a (all its rows, as one [M, K] matrix)
 * is quantized to uint8 per tensor (ONNX DynamicQuantizeLinear, onnxq_dynamic_quantize), then
 *   y[m, n] = (float)acc[m, n] * (a_scale * w_scale[n])  (+ B[n], a separate fp32 add)
 * with acc = sum_k (q[m, k] - a_zp) * w[k, n] in int32 — exactly onnxq_dqmm per tensor, so the
 * bytes are those of onnxq.kernels.dynamic.dynamic_matmul and its numpy reference. The weights,
 * scales and bias are constants, packed once when the session is created. The range is taken
 * over the whole tensor first; then tiles of rows x columns run on the session's intra-op
 * threads (onnxq_ort_gemm_tiling: bands of up to 256 rows, so a transformer's 128 tokens are
 * one GEMM and each weight is widened / loaded once per call, times ranges of columns, so few
 * rows still spread over the threads). Every value's integer sum and its fp32 output step are the same whatever the split,
 * so the bytes do not depend on the thread count.
 * NaN or infinity in a is an error naming the node.
 */
#include <stdlib.h>
#include <string.h>

#include "onnxq/onnxq.h"
#include "ort/ort_kernel.h"

typedef struct dqmm_kernel {
    onnxq_ort_node node;
    size_t k, n;
    float* w_scale;
    size_t w_scale_len;
    float* bias;
    void* packed;
    size_t packed_size;
} dqmm_kernel;

static void destroy(void* kernel) {
    dqmm_kernel* d = kernel;
    if (d == NULL) return;
    free(d->w_scale);
    free(d->bias);
    free(d->packed);
    free(d);
}

static OrtStatus* fail_free(dqmm_kernel* d, OrtStatus* s) {
    destroy(d);
    return s;
}

static OrtStatus* create(const OrtKernelInfo* info, onnxq_ort_node node, void** kernel) {
    dqmm_kernel* d = calloc(1, sizeof *d);
    if (d == NULL) return onnxq_ort_fail_code(ORT_FAIL, &node, "out of memory");
    d->node = node;
    const onnxq_ort_node* nd = &d->node;
    onnxq_ort_tensor w, ws, wz, b;
    OrtStatus* s;
    if ((s = onnxq_ort_constant(info, nd, 1, "w", ORT_TYPE_INT8, 0, &w)) != NULL ||
        (s = onnxq_ort_constant(info, nd, 2, "w_scale", ORT_TYPE_FLOAT, 0, &ws)) != NULL ||
        (s = onnxq_ort_constant(info, nd, 3, "w_zero_point", ORT_TYPE_INT8, 0, &wz)) != NULL ||
        (s = onnxq_ort_constant(info, nd, 4, "B", ORT_TYPE_FLOAT, 1, &b)) != NULL)
        return fail_free(d, s);
    if (w.ndim != 2 || w.count == 0)
        return fail_free(d, onnxq_ort_fail(nd, "w is not a non-empty [K, N] matrix"));
    d->k = (size_t)w.dims[0];
    d->n = (size_t)w.dims[1];
    if (b.data != NULL && b.count != d->n)
        return fail_free(d, onnxq_ort_fail(nd, "B has %zu values, expected %zu", b.count, d->n));
    if ((s = onnxq_ort_weight_scales(nd, &ws, &wz, d->n, &d->w_scale)) != NULL) return fail_free(d, s);
    d->w_scale_len = ws.count;
    if (b.data != NULL) {
        if ((d->bias = malloc(d->n * sizeof *d->bias)) == NULL)
            return fail_free(d, onnxq_ort_fail_code(ORT_FAIL, nd, "out of memory"));
        memcpy(d->bias, b.data, d->n * sizeof *d->bias);
    }
    if ((s = onnxq_ort_pack_gemm(nd, &w, d->k, d->n, (ptrdiff_t)d->n, 1, &d->packed, &d->packed_size)) != NULL)
        return fail_free(d, s);
    *kernel = d;
    return NULL;
}

typedef struct dqmm_job {
    const dqmm_kernel* d;
    const uint8_t* q;
    int32_t a_zp;
    const float* mult;
    float* y;
    onnxq_ort_gemm_tiles tiles;
    onnxq_ort_job_error error;
} dqmm_job;

static void run_tile(void* data, size_t i) {
    dqmm_job* job = data;
    const dqmm_kernel* d = job->d;
    size_t r0, m, col0, cols;
    onnxq_ort_gemm_tile(&job->tiles, i, &r0, &m, &col0, &cols);
    onnxq_gemm_u8s8_params p;
    memset(&p, 0, sizeof p);
    p.k = d->k, p.n = d->n, p.m = m;
    p.a = job->q + r0 * d->k, p.a_len = m * d->k, p.lda = d->k, p.a_zp = job->a_zp;
    p.out_type = ONNXQ_F32;
    p.scale = job->mult, p.scale_len = d->w_scale_len;
    p.bias_f = d->bias, p.bias_f_len = d->bias != NULL ? d->n : 0;
    p.c = job->y + r0 * d->n, p.c_len = m * d->n, p.ldc = d->n;
    onnxq_ort_job_fail(&job->error, onnxq_gemm_u8s8_run_cols(d->packed, d->packed_size, &p, col0, cols));
}

static OrtStatus* compute(void* kernel, OrtKernelContext* ctx) {
    const dqmm_kernel* d = kernel;
    const onnxq_ort_node* nd = &d->node;
    onnxq_ort_tensor a, y;
    size_t m = 0;
    OrtStatus* s = onnxq_ort_matmul_io(ctx, nd, d->k, d->n, &a, &y, &m);
    if (s != NULL || m == 0) return s;
    uint8_t* q = malloc(a.count);
    float* mult = malloc(d->w_scale_len * sizeof *mult);
    if (q == NULL || mult == NULL) {
        free(q);
        free(mult);
        return onnxq_ort_fail_code(ORT_FAIL, nd, "out of memory (%zu x %zu activations)", m, d->k);
    }
    float a_scale = 0.0f;
    int32_t a_zp = 0;
    int st = onnxq_dynamic_quantize(a.data, a.count, m, d->k, d->k, ONNXQ_DQ_PER_TENSOR, q, a.count,
                                    &a_scale, &a_zp, 1);
    if (st != 0) {
        free(q);
        free(mult);
        return onnxq_ort_kernel_error(nd, st);
    }
    for (size_t j = 0; j < d->w_scale_len; j++) mult[j] = a_scale * d->w_scale[j];
    dqmm_job job;
    memset(&job, 0, sizeof job);
    job.d = d, job.q = q, job.a_zp = a_zp, job.mult = mult, job.y = y.data;
    job.tiles = onnxq_ort_gemm_tiling(m, d->n);
    s = onnxq_ort_parallel(ctx, nd, run_tile, job.tiles.count, &job);
    free(q);
    free(mult);
    return s != NULL ? s : onnxq_ort_job_status(nd, &job.error);
}

onnxq_ort_opdef onnxq_ort_op_dynamicmatmul = {
    .name = "DynamicMatMul",
    .n_inputs = 5,
    .n_required = 4,
    .input_types = {ORT_TYPE_FLOAT, ORT_TYPE_INT8, ORT_TYPE_FLOAT, ORT_TYPE_INT8, ORT_TYPE_FLOAT},
    .n_outputs = 1,
    .output_types = {ORT_TYPE_FLOAT},
    .create = create,
    .compute = compute,
    .destroy = destroy,
};
