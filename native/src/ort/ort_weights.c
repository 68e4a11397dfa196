/* Quantization parameters, weight packing and the tiling and thread plumbing the GEMM-based ops
 * share (onnxq_ort_scale ... onnxq_ort_parallel). See ort_kernel.h. */
#include "ort/ort_kernel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "onnxq/onnxq.h"

OrtStatus* onnxq_ort_scale(const onnxq_ort_node* node, const onnxq_ort_tensor* t, const char* what,
                           float* out) {
    float v = ((const float*)t->data)[0];
    if (!isfinite(v) || !(v > 0.0f))
        return onnxq_ort_fail(node, "%s is %g, expected a finite scale > 0", what, (double)v);
    *out = v;
    return NULL;
}

int32_t onnxq_ort_zero_point(const onnxq_ort_tensor* t) {
    if (t->type == ORT_TYPE_INT8) return ((const int8_t*)t->data)[0];
    return ((const uint8_t*)t->data)[0];
}

OrtStatus* onnxq_ort_weight_scales(const onnxq_ort_node* node, const onnxq_ort_tensor* w_scale,
                                   const onnxq_ort_tensor* w_zero_point, size_t n, float** scales) {
    *scales = NULL;
    if (w_scale->count != 1 && w_scale->count != n)
        return onnxq_ort_fail(node, "w_scale has %zu values, expected 1 or %zu", w_scale->count, n);
    if (w_zero_point->count != 1 && w_zero_point->count != n)
        return onnxq_ort_fail(node, "w_zero_point has %zu values, expected 1 or %zu", w_zero_point->count, n);
    const int8_t* zp = w_zero_point->data;
    for (size_t i = 0; i < w_zero_point->count; i++)
        if (zp[i] != 0)
            return onnxq_ort_fail(node, "w_zero_point[%zu] is %d; onnxq's %s takes symmetric weights "
                                  "(zero point 0)", i, zp[i], node->op);
    float* out = malloc(w_scale->count * sizeof *out);
    if (out == NULL) return onnxq_ort_fail_code(ORT_FAIL, node, "out of memory");
    for (size_t i = 0; i < w_scale->count; i++) {
        onnxq_ort_tensor one = *w_scale;
        one.data = (float*)w_scale->data + i;
        OrtStatus* s = onnxq_ort_scale(node, &one, "w_scale", &out[i]);
        if (s != NULL) {
            free(out);
            return s;
        }
    }
    *scales = out;
    return NULL;
}

OrtStatus* onnxq_ort_pack_gemm(const onnxq_ort_node* node, const onnxq_ort_tensor* w, size_t k,
                               size_t n, ptrdiff_t stride_k, ptrdiff_t stride_n, void** packed,
                               size_t* packed_size) {
    *packed = NULL;
    *packed_size = onnxq_gemm_u8s8_packed_size(k, n);
    if (*packed_size == 0) return onnxq_ort_fail(node, "w is too large to pack");
    void* buf = aligned_alloc(64, (*packed_size + 63) & ~(size_t)63);
    if (buf == NULL) return onnxq_ort_fail_code(ORT_FAIL, node, "out of memory");
    int st = onnxq_gemm_u8s8_pack(w->data, w->count, k, n, stride_k, stride_n, 0, buf, *packed_size);
    if (st != 0) {
        free(buf);
        return onnxq_ort_kernel_error(node, st);
    }
    *packed = buf;
    return NULL;
}

onnxq_ort_gemm_tiles onnxq_ort_gemm_tiling(size_t m, size_t n) {
    onnxq_ort_gemm_tiles t = {m, n, 1, 0, 0};
    const size_t blocks = (n + 15) / 16;
    size_t chunks = blocks / ONNXQ_ORT_GEMM_MIN_BLOCKS;
    chunks = chunks < 1 ? 1 : chunks > ONNXQ_ORT_GEMM_CHUNKS ? ONNXQ_ORT_GEMM_CHUNKS : chunks;
    t.chunk_cols = (blocks + chunks - 1) / chunks * 16;
    t.chunks = (n + t.chunk_cols - 1) / t.chunk_cols;
    t.count = (m + ONNXQ_ORT_GEMM_BAND - 1) / ONNXQ_ORT_GEMM_BAND * t.chunks;
    return t;
}

void onnxq_ort_gemm_tile(const onnxq_ort_gemm_tiles* t, size_t i, size_t* r0, size_t* rows,
                         size_t* col0, size_t* cols) {
    *r0 = i / t->chunks * ONNXQ_ORT_GEMM_BAND;
    *rows = t->m - *r0 < ONNXQ_ORT_GEMM_BAND ? t->m - *r0 : ONNXQ_ORT_GEMM_BAND;
    *col0 = i % t->chunks * t->chunk_cols;
    *cols = t->n - *col0 < t->chunk_cols ? t->n - *col0 : t->chunk_cols;
}

void onnxq_ort_job_fail(onnxq_ort_job_error* e, int status) {
    int expected = 0;
    if (status != 0 && atomic_compare_exchange_strong(&e->status, &expected, status))
        snprintf(e->message, sizeof e->message, "%s", onnxq_last_error());
}

OrtStatus* onnxq_ort_job_status(const onnxq_ort_node* node, onnxq_ort_job_error* e) {
    if (atomic_load(&e->status) == 0) return NULL;
    return onnxq_ort_fail_code(ORT_FAIL, node, "%s", e->message);
}

OrtStatus* onnxq_ort_parallel(OrtKernelContext* ctx, const onnxq_ort_node* node,
                              void (*fn)(void* data, size_t i), size_t n, void* data) {
    if (n <= 1) {
        if (n == 1) fn(data, 0);
        return NULL;
    }
    OrtStatus* s = onnxq_ort_api.KernelContext_ParallelFor(ctx, fn, n, 0, data);
    return s == NULL ? NULL : onnxq_ort_wrap(node, s, "parallel run");
}
