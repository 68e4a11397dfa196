/* ai.onnxq DynamicMatMulNBits: fp32 activations quantized per row to int8 at run time times 4-bit
 * block-wise weights (blockwise.h), the int4 kernel of weight-only quantization.
 *
 *   DynamicMatMulNBits(a: float32 [..., K], B: uint8 [N, nb, block_size / 2],
 *                      scales: float32 [N * nb], zero_points: uint8 [N * ceil(nb / 2)] (optional),
 *                      bias: float32 [N] (optional); K, N, bits = 4, block_size) -> float32 [..., N]
 *
 * The weights come in com.microsoft.MatMulNBits' layout (nb = ceil(K / block_size); codes two a
 * byte, the low nibble first; zero points 8 when absent) and are packed once when the session is
 * created (onnxq_qb4w_pack). Each row of a (all its rows, as one [M, K] matrix) is quantized to
 * int8 with its own scale (onnxq_qd8_quantize_rows), then ranges of columns run on the session's
 * intra-op threads (onnxq_qb4w_run_cols): every output value has one integer sum per block and a
 * fixed fp32 summation order, so the bytes are those of onnxq.kernels.reference.blockwise whatever
 * the thread count. NaN or infinity in a is an error naming the node.
 */
#include <stdlib.h>
#include <string.h>

#include "onnxq/onnxq.h"
#include "ort/ort_kernel.h"

enum { IN_B = 1, IN_SCALES, IN_ZP, IN_BIAS };
/* below this many multiply-adds a run stays on the calling thread */
#define NBITS_MIN_PARALLEL_MACS ((size_t)1 << 18)

typedef struct nbits_kernel {
    onnxq_ort_node node;
    size_t k, n, block;
    int has_zp;
    float* bias;
    void* packed;
    size_t packed_size;
} nbits_kernel;

static void destroy(void* kernel) {
    nbits_kernel* d = kernel;
    if (d == NULL) return;
    free(d->bias);
    free(d->packed);
    free(d);
}

static OrtStatus* fail_free(nbits_kernel* d, OrtStatus* s) {
    destroy(d);
    return s;
}

static OrtStatus* create(const OrtKernelInfo* info, onnxq_ort_node node, void** kernel) {
    nbits_kernel* d = calloc(1, sizeof *d);
    if (d == NULL) return onnxq_ort_fail_code(ORT_FAIL, &node, "out of memory");
    d->node = node;
    const onnxq_ort_node* nd = &d->node;
    int64_t k, n, bits, block;
    onnxq_ort_tensor b, sc, zp, bias;
    OrtStatus* s;
    if ((s = onnxq_ort_attr_int(info, nd, "K", 1, (int64_t)1 << 31, &k)) != NULL ||
        (s = onnxq_ort_attr_int(info, nd, "N", 1, (int64_t)1 << 31, &n)) != NULL ||
        (s = onnxq_ort_attr_int(info, nd, "bits", 4, 4, &bits)) != NULL ||
        (s = onnxq_ort_attr_int(info, nd, "block_size", 32, 65536, &block)) != NULL ||
        (s = onnxq_ort_constant(info, nd, IN_B, "B", ORT_TYPE_UINT8, 0, &b)) != NULL ||
        (s = onnxq_ort_constant(info, nd, IN_SCALES, "scales", ORT_TYPE_FLOAT, 0, &sc)) != NULL ||
        (s = onnxq_ort_optional_constant(info, nd, IN_ZP, "zero_points", ORT_TYPE_UINT8, &zp)) != NULL ||
        (s = onnxq_ort_optional_constant(info, nd, IN_BIAS, "bias", ORT_TYPE_FLOAT, &bias)) != NULL)
        return fail_free(d, s);
    d->k = (size_t)k, d->n = (size_t)n, d->block = (size_t)block, d->has_zp = zp.data != NULL;
    if (bias.data != NULL) {
        if (bias.count != d->n)
            return fail_free(d, onnxq_ort_fail(nd, "bias has %zu values, expected N = %zu", bias.count, d->n));
        if ((d->bias = malloc(d->n * sizeof *d->bias)) == NULL)
            return fail_free(d, onnxq_ort_fail_code(ORT_FAIL, nd, "out of memory"));
        memcpy(d->bias, bias.data, d->n * sizeof *d->bias);
    }
    int st = onnxq_qb4w_packed_size(d->k, d->n, d->block, zp.data != NULL, &d->packed_size);
    if (st != 0) return fail_free(d, onnxq_ort_kernel_error(nd, st));
    d->packed = aligned_alloc(64, (d->packed_size + 63) / 64 * 64);
    if (d->packed == NULL)
        return fail_free(d, onnxq_ort_fail_code(ORT_FAIL, nd, "out of memory (%zu bytes of packed weights)",
                                                d->packed_size));
    /* the lengths of B, scales and zero_points are checked by the packing (named in its message) */
    st = onnxq_qb4w_pack(d->k, d->n, d->block, b.data, b.count, sc.data, sc.count, zp.data, zp.count,
                         d->packed, d->packed_size);
    if (st != 0) return fail_free(d, onnxq_ort_kernel_error(nd, st));
    *kernel = d;
    return NULL;
}

typedef struct nbits_job {
    const nbits_kernel* d;
    const onnxq_qd8_rows* rows;
    float* y;
    size_t cols_per_task;
    onnxq_ort_job_error error;
} nbits_job;

static void run_task(void* data, size_t i) {
    nbits_job* job = data;
    const nbits_kernel* d = job->d;
    const size_t col0 = i * job->cols_per_task;
    const size_t cols = d->n - col0 < job->cols_per_task ? d->n - col0 : job->cols_per_task;
    onnxq_ort_job_fail(&job->error, onnxq_qb4w_run_cols(d->packed, d->packed_size, job->rows, d->bias,
                                                        d->bias != NULL ? d->n : 0, job->y,
                                                        job->rows->m * d->n, d->n, col0, cols));
}

/* Quantizes a's rows into `rows`, then every column range on the intra-op threads. */
static OrtStatus* run(OrtKernelContext* ctx, const nbits_kernel* d, const onnxq_qd8_rows* rows,
                      const float* a, size_t a_len, float* y) {
    const onnxq_ort_node* nd = &d->node;
    int st = onnxq_qd8_quantize_rows(a, a_len, d->k, rows);
    if (st != 0) return onnxq_ort_kernel_error(nd, st);
    nbits_job job;
    memset(&job, 0, sizeof job);
    job.d = d, job.rows = rows, job.y = y;
    const size_t panels = (d->n + 15) / 16;
    const double macs = (double)rows->m * (double)d->k * (double)d->n;
    size_t tasks = macs < (double)NBITS_MIN_PARALLEL_MACS ? 1 : 8;
    if (tasks > panels) tasks = panels;
    job.cols_per_task = (panels + tasks - 1) / tasks * 16;
    OrtStatus* s = onnxq_ort_parallel(ctx, nd, run_task, (d->n + job.cols_per_task - 1) / job.cols_per_task,
                                      &job);
    return s != NULL ? s : onnxq_ort_job_status(nd, &job.error);
}

static OrtStatus* compute(void* kernel, OrtKernelContext* ctx) {
    const nbits_kernel* d = kernel;
    const onnxq_ort_node* nd = &d->node;
    onnxq_ort_tensor a, y, zp, bias;
    OrtStatus* s;
    if ((s = onnxq_ort_optional_input(ctx, nd, IN_BIAS, "bias", ORT_TYPE_FLOAT, &bias)) != NULL ||
        (s = onnxq_ort_optional_input(ctx, nd, IN_ZP, "zero_points", ORT_TYPE_UINT8, &zp)) != NULL)
        return s;
    if ((bias.data != NULL && d->bias == NULL) || (zp.data != NULL && !d->has_zp))
        return onnxq_ort_fail(nd, "%s must be a constant (an initializer), read once when the session "
                              "is created", zp.data != NULL && !d->has_zp ? "zero_points" : "bias");
    size_t m = 0;
    if ((s = onnxq_ort_matmul_io(ctx, nd, d->k, d->n, &a, &y, &m)) != NULL || m == 0) return s;
    const size_t nb = (d->k + d->block - 1) / d->block, kp = nb * d->block;
    int8_t* q = malloc(m * kp);
    float* scale = malloc(m * sizeof *scale);
    int32_t* bsum = malloc(m * nb * sizeof *bsum);
    if (q == NULL || scale == NULL || bsum == NULL) {
        s = onnxq_ort_fail_code(ORT_FAIL, nd, "out of memory (%zu x %zu activations)", m, d->k);
    } else {
        const onnxq_qd8_rows rows = {m, d->k, d->block, q, m * kp, scale, m, bsum, m * nb};
        s = run(ctx, d, &rows, a.data, a.count, y.data);
    }
    free(q);
    free(scale);
    free(bsum);
    return s;
}

onnxq_ort_opdef onnxq_ort_op_dynamicmatmulnbits = {
    .name = "DynamicMatMulNBits",
    .n_inputs = 5,
    .n_required = 3,
    .input_types = {ORT_TYPE_FLOAT, ORT_TYPE_UINT8, ORT_TYPE_FLOAT, ORT_TYPE_UINT8, ORT_TYPE_FLOAT},
    .n_outputs = 1,
    .output_types = {ORT_TYPE_FLOAT},
    .create = create,
    .compute = compute,
    .destroy = destroy,
};
