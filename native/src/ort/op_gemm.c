/* ai.onnxq QGemm: a uint8 x int8 matrix product with requantised uint8 output (gemm.h).
 *
 *   QGemm(a: uint8 [M, K], a_scale, a_zero_point: uint8, w: int8 [N, K] (transB = 1) or [K, N],
 *         w_scale: float32 [1 or N], w_zero_point: int8 [1 or N] (all 0), y_scale,
 *         y_zero_point: uint8, B: int32 [N] (optional)) -> uint8 [M, N]
 *
 * ONNX Gemm (alpha = beta = 1) between a QDQ pair, as onnxruntime's fused QGemm computes it:
 * acc = B[n] + sum_k (a - a_zp) * w, requantised by a_scale * w_scale[n] / y_scale in fp32.
 * Every input but a is a constant, packed once when the session is created. Attributes transB,
 * qmin / qmax (the fused ReLU as a clamp). Tiles of rows x columns (onnxq_ort_gemm_tiling) run on
 * the session's intra-op threads.
 */
#include <stdlib.h>
#include <string.h>

#include "onnxq/onnxq.h"
#include "ort/ort_kernel.h"

typedef struct gemm_kernel {
    onnxq_ort_node node;
    size_t k, n;
    int32_t a_zp, y_zp, qmin, qmax;
    int32_t* bias;
    float* scale;
    size_t scale_len;
    void* packed;
    size_t packed_size;
} gemm_kernel;

static void destroy(void* kernel) {
    gemm_kernel* g = kernel;
    if (g == NULL) return;
    free(g->bias);
    free(g->scale);
    free(g->packed);
    free(g);
}

static OrtStatus* fail_free(gemm_kernel* g, OrtStatus* s) {
    destroy(g);
    return s;
}

static OrtStatus* create(const OrtKernelInfo* info, onnxq_ort_node node, void** kernel) {
    gemm_kernel* g = calloc(1, sizeof *g);
    if (g == NULL) return onnxq_ort_fail_code(ORT_FAIL, &node, "out of memory");
    g->node = node;
    const onnxq_ort_node* nd = &g->node;
    int64_t trans_b, qmin, qmax;
    onnxq_ort_tensor as, az, w, ws, wz, ys, yz, b;
    float a_scale, y_scale;
    OrtStatus* s;
    if ((s = onnxq_ort_attr_int(info, nd, "transB", 0, 1, &trans_b)) != NULL ||
        (s = onnxq_ort_attr_int(info, nd, "qmin", 0, 255, &qmin)) != NULL ||
        (s = onnxq_ort_attr_int(info, nd, "qmax", qmin, 255, &qmax)) != NULL ||
        (s = onnxq_ort_constant_scalar(info, nd, 1, "a_scale", ORT_TYPE_FLOAT, &as)) != NULL ||
        (s = onnxq_ort_scale(nd, &as, "a_scale", &a_scale)) != NULL ||
        (s = onnxq_ort_constant_scalar(info, nd, 2, "a_zero_point", ORT_TYPE_UINT8, &az)) != NULL ||
        (s = onnxq_ort_constant(info, nd, 3, "w", ORT_TYPE_INT8, 0, &w)) != NULL ||
        (s = onnxq_ort_constant(info, nd, 4, "w_scale", ORT_TYPE_FLOAT, 0, &ws)) != NULL ||
        (s = onnxq_ort_constant(info, nd, 5, "w_zero_point", ORT_TYPE_INT8, 0, &wz)) != NULL ||
        (s = onnxq_ort_constant_scalar(info, nd, 6, "y_scale", ORT_TYPE_FLOAT, &ys)) != NULL ||
        (s = onnxq_ort_scale(nd, &ys, "y_scale", &y_scale)) != NULL ||
        (s = onnxq_ort_constant_scalar(info, nd, 7, "y_zero_point", ORT_TYPE_UINT8, &yz)) != NULL ||
        (s = onnxq_ort_constant(info, nd, 8, "B", ORT_TYPE_INT32, 1, &b)) != NULL)
        return fail_free(g, s);
    if (w.ndim != 2 || w.count == 0) return fail_free(g, onnxq_ort_fail(nd, "w is not a non-empty matrix"));
    g->n = (size_t)(trans_b ? w.dims[0] : w.dims[1]);
    g->k = (size_t)(trans_b ? w.dims[1] : w.dims[0]);
    if (b.data != NULL && b.count != g->n)
        return fail_free(g, onnxq_ort_fail(nd, "B has %zu values, expected %zu", b.count, g->n));
    if ((s = onnxq_ort_weight_scales(nd, &ws, &wz, g->n, &g->scale)) != NULL) return fail_free(g, s);
    g->scale_len = ws.count;
    for (size_t i = 0; i < ws.count; i++) g->scale[i] = (a_scale * g->scale[i]) / y_scale;
    if (b.data != NULL) {
        if ((g->bias = malloc(g->n * sizeof *g->bias)) == NULL)
            return fail_free(g, onnxq_ort_fail_code(ORT_FAIL, nd, "out of memory"));
        memcpy(g->bias, b.data, g->n * sizeof *g->bias);
    }
    g->a_zp = onnxq_ort_zero_point(&az);
    g->y_zp = onnxq_ort_zero_point(&yz);
    g->qmin = (int32_t)qmin;
    g->qmax = (int32_t)qmax;
    ptrdiff_t stride_k = trans_b ? 1 : (ptrdiff_t)g->n, stride_n = trans_b ? (ptrdiff_t)g->k : 1;
    if ((s = onnxq_ort_pack_gemm(nd, &w, g->k, g->n, stride_k, stride_n, &g->packed, &g->packed_size)) != NULL)
        return fail_free(g, s);
    *kernel = g;
    return NULL;
}

typedef struct gemm_job {
    const gemm_kernel* g;
    const uint8_t* a;
    uint8_t* y;
    onnxq_ort_gemm_tiles tiles;
    onnxq_ort_job_error error;
} gemm_job;

static onnxq_gemm_u8s8_params rows_params(const gemm_kernel* g, const uint8_t* a, uint8_t* y, size_t m) {
    onnxq_gemm_u8s8_params p;
    memset(&p, 0, sizeof p);
    p.k = g->k, p.n = g->n, p.m = m;
    p.a = a, p.a_len = m * g->k, p.lda = g->k, p.a_zp = g->a_zp;
    p.bias = g->bias, p.bias_len = g->bias != NULL ? g->n : 0;
    p.out_type = ONNXQ_U8;
    p.scale = g->scale, p.scale_len = g->scale_len;
    p.out_zp = g->y_zp, p.qmin = g->qmin, p.qmax = g->qmax;
    p.c = y, p.c_len = m * g->n, p.ldc = g->n;
    return p;
}

static void run_tile(void* data, size_t i) {
    gemm_job* job = data;
    size_t r0, m, col0, cols;
    onnxq_ort_gemm_tile(&job->tiles, i, &r0, &m, &col0, &cols);
    onnxq_gemm_u8s8_params p = rows_params(job->g, job->a + r0 * job->g->k, job->y + r0 * job->g->n, m);
    onnxq_ort_job_fail(&job->error,
                       onnxq_gemm_u8s8_run_cols(job->g->packed, job->g->packed_size, &p, col0, cols));
}

static OrtStatus* compute(void* kernel, OrtKernelContext* ctx) {
    const gemm_kernel* g = kernel;
    onnxq_ort_tensor a, y;
    OrtStatus* s = onnxq_ort_input(ctx, &g->node, 0, "a", ORT_TYPE_UINT8, &a);
    if (s != NULL) return s;
    if (a.ndim != 2 || (size_t)a.dims[1] != g->k)
        return onnxq_ort_fail(&g->node, "a must be a matrix of %zu columns", g->k);
    int64_t dims[2] = {a.dims[0], (int64_t)g->n};
    if ((s = onnxq_ort_output(ctx, &g->node, 0, dims, 2, ORT_TYPE_UINT8, &y)) != NULL) return s;
    size_t m = (size_t)a.dims[0];
    if (m == 0) return NULL;
    gemm_job job;
    memset(&job, 0, sizeof job);
    job.g = g, job.a = a.data, job.y = y.data, job.tiles = onnxq_ort_gemm_tiling(m, g->n);
    if ((s = onnxq_ort_parallel(ctx, &g->node, run_tile, job.tiles.count, &job)) != NULL) return s;
    return onnxq_ort_job_status(&g->node, &job.error);
}

onnxq_ort_opdef onnxq_ort_op_qgemm = {
    .name = "QGemm",
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
