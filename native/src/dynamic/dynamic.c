/* Dynamic quantization of fp32 activations and the dynamic-quantization matmul (validation, range,
 * quantize via onnxq_quantize, then the u8s8 GEMM with fp32 output). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/internal.h"
#include "onnxq/dynamic.h"
#include "onnxq_kernels.h"

/* ONNX DynamicQuantizeLinear parameters of the range [lo, hi] (as onnxruntime computes them). */
static void choose(float lo, float hi, float* scale, int32_t* zp) {
    lo = lo < 0.0f ? lo : 0.0f;
    hi = hi > 0.0f ? hi : 0.0f;
    const float s = hi == lo ? 1.0f : (hi - lo) / 255.0f;
    float z = 0.0f - lo / s;
    z = z < 0.0f ? 0.0f : z;
    z = z > 255.0f ? 255.0f : z;
    *scale = s;
    *zp = (int32_t)nearbyintf(z);
}

static int quantize_rows(const float* x, size_t rows, size_t cols, size_t ldx, float scale,
                         int32_t zp, uint8_t* q) {
    onnxq_quant_params qp = {1, 1, cols, &scale, &zp, ONNXQ_U8};
    if (ldx == cols) {
        qp.inner = rows * cols;
        return onnxq_quantize(&qp, x, q);
    }
    for (size_t r = 0; r < rows; ++r) {
        int st = onnxq_quantize(&qp, x + r * ldx, q + r * cols);
        if (st != ONNXQ_OK) return st;
    }
    return ONNXQ_OK;
}

static int range_error(const char* what, size_t row, float lo, float hi) {
    return onnxq_error(ONNXQ_E_ARG, "%s: A row %zu has range [%g, %g]; expected finite values",
                       what, row, (double)lo, (double)hi);
}

static int dq_impl(const char* what, const float* x, size_t rows, size_t cols, size_t ldx,
                   int mode, uint8_t* q, float* scale, int32_t* zp) {
    const onnxq_minmax_f32_entry* e = onnxq_minmax_f32_select();
    if (e == NULL) return onnxq_isa_check();
    if (mode == ONNXQ_DQ_PER_TENSOR) {
        float lo = INFINITY, hi = -INFINITY;
        for (size_t r = 0; r < rows; ++r) e->fn(cols, x + r * ldx, &lo, &hi);
        if (!isfinite(lo) || !isfinite(hi)) return range_error(what, 0, lo, hi);
        choose(lo, hi, &scale[0], &zp[0]);
        if (!(scale[0] > 0.0f) || !isfinite(scale[0])) return range_error(what, 0, lo, hi);
        return quantize_rows(x, rows, cols, ldx, scale[0], zp[0], q);
    }
    for (size_t r = 0; r < rows; ++r) {
        float lo = INFINITY, hi = -INFINITY;
        e->fn(cols, x + r * ldx, &lo, &hi);
        if (!isfinite(lo) || !isfinite(hi)) return range_error(what, r, lo, hi);
        choose(lo, hi, &scale[r], &zp[r]);
        if (!(scale[r] > 0.0f) || !isfinite(scale[r])) return range_error(what, r, lo, hi);
        int st = quantize_rows(x + r * ldx, 1, cols, cols, scale[r], zp[r], q + r * cols);
        if (st != ONNXQ_OK) return st;
    }
    return ONNXQ_OK;
}

int onnxq_dynamic_quantize(const float* x, size_t rows, size_t cols, size_t ldx, int mode,
                           uint8_t* q, float* scale, int32_t* zp) {
    ONNXQ_CHECK_NOT_NULL(x, "x");
    ONNXQ_CHECK_NOT_NULL(q, "q");
    ONNXQ_CHECK_NOT_NULL(scale, "scale");
    ONNXQ_CHECK_NOT_NULL(zp, "zero_point");
    if (mode != ONNXQ_DQ_PER_TENSOR && mode != ONNXQ_DQ_PER_ROW)
        return onnxq_error(ONNXQ_E_ARG, "dynamic_quantize: mode = %d, expected 0 (per tensor) or 1 "
                           "(per row)", mode);
    if (rows == 0 || cols == 0)
        return onnxq_error(ONNXQ_E_SHAPE, "dynamic_quantize: zero-size input (%zu x %zu)", rows, cols);
    if (ldx < cols)
        return onnxq_error(ONNXQ_E_SHAPE, "dynamic_quantize: ldx = %zu < cols = %zu", ldx, cols);
    size_t total;
    if (onnxq_mul_overflow(rows, ldx, &total) || total > (SIZE_MAX >> 3))
        return onnxq_error(ONNXQ_E_SHAPE, "dynamic_quantize: size overflows");
    int st = onnxq_isa_check();
    if (st != ONNXQ_OK) return st;
    return dq_impl("dynamic_quantize", x, rows, cols, ldx, mode, q, scale, zp);
}

/* Per-row mode: one int32 GEMM for all rows (zero point 0), then the per-row zero-point correction
 * acc = sum(q * w) - a_zp[r] * colsum(w) and the fp32 scaling the GEMM's fp32 output would do:
 * y = (float)acc * (a_scale[r] * w_scale[n]) (+ bias[n]). */
static int dqmm_per_row(const void* packed_w, size_t packed_size, const onnxq_dqmm_params* p,
                        size_t k, size_t n) {
    int st = ONNXQ_OK;
    const size_t m = p->m;
    uint8_t* q = (uint8_t*)malloc(m * k + k);
    float* a_scale = (float*)malloc(m * sizeof(float));
    int32_t* a_zp = (int32_t*)malloc(m * sizeof(int32_t));
    int32_t* acc = (int32_t*)malloc((m + 1) * n * sizeof(int32_t));
    if (q == NULL || a_scale == NULL || a_zp == NULL || acc == NULL) {
        st = onnxq_error(ONNXQ_E_NOMEM, "dqmm: cannot allocate scratch for %zu x %zu", m, n);
        goto done;
    }
    st = dq_impl("dqmm", p->a, m, k, p->lda, ONNXQ_DQ_PER_ROW, q, a_scale, a_zp);
    if (st != ONNXQ_OK) goto done;
    uint8_t* ones = q + m * k;
    memset(ones, 1, k);
    int32_t* colsum = acc + m * n;
    onnxq_gemm_u8s8_params g = {0};
    g.m = 1;
    g.a = ones;
    g.lda = k;
    g.out_type = ONNXQ_I32;
    g.c = colsum;
    g.ldc = n;
    if ((st = onnxq_gemm_u8s8_run(packed_w, packed_size, &g)) != ONNXQ_OK) goto done;
    g.m = m;
    g.a = q;
    g.c = acc;
    if ((st = onnxq_gemm_u8s8_run(packed_w, packed_size, &g)) != ONNXQ_OK) goto done;
    for (size_t r = 0; r < m; ++r) {
        float* y = p->y + r * p->ldy;
        const int32_t* ar = acc + r * n;
        for (size_t j = 0; j < n; ++j) {
            const int32_t a = (int32_t)((int64_t)ar[j] - (int64_t)a_zp[r] * colsum[j]);
            const float s = a_scale[r] * p->w_scale[p->w_scale_len == 1 ? 0 : j];
            float v = (float)a * s;
            if (p->bias != NULL) v = v + p->bias[j];
            y[j] = v;
        }
    }
done:
    free(q);
    free(a_scale);
    free(a_zp);
    free(acc);
    return st;
}

int onnxq_dqmm(const void* packed_w, size_t packed_size, const onnxq_dqmm_params* p) {
    ONNXQ_CHECK_NOT_NULL(p, "params");
    ONNXQ_CHECK_NOT_NULL(packed_w, "packed_w");
    ONNXQ_CHECK_NOT_NULL(p->a, "a");
    ONNXQ_CHECK_NOT_NULL(p->y, "y");
    ONNXQ_CHECK_NOT_NULL(p->w_scale, "w_scale");
    size_t k = 0, n = 0;
    int st = onnxq_gemm_u8s8_packed_shape(packed_w, packed_size, &k, &n);
    if (st != ONNXQ_OK) return st;
    if (p->mode != ONNXQ_DQ_PER_TENSOR && p->mode != ONNXQ_DQ_PER_ROW)
        return onnxq_error(ONNXQ_E_ARG, "dqmm: mode = %d, expected 0 (per tensor) or 1 (per row)",
                           p->mode);
    if (p->m == 0) return onnxq_error(ONNXQ_E_SHAPE, "dqmm: zero-size A (m = 0)");
    if (p->lda < k)
        return onnxq_error(ONNXQ_E_SHAPE, "dqmm: lda = %zu < k = %zu of the packed weights", p->lda, k);
    if (p->ldy < n)
        return onnxq_error(ONNXQ_E_SHAPE, "dqmm: ldy = %zu < n = %zu of the packed weights", p->ldy, n);
    if (p->w_scale_len != 1 && p->w_scale_len != n)
        return onnxq_error(ONNXQ_E_SHAPE, "dqmm: w_scale has %zu values, expected 1 or n = %zu",
                           p->w_scale_len, n);
    for (size_t j = 0; j < p->w_scale_len; ++j)
        if (!(p->w_scale[j] > 0.0f) || !isfinite(p->w_scale[j]))
            return onnxq_error(ONNXQ_E_ARG, "dqmm: w_scale[%zu] = %g, expected a finite value > 0", j,
                               (double)p->w_scale[j]);
    size_t qsize;
    if (onnxq_mul_overflow(p->m, k, &qsize) || onnxq_mul_overflow(p->m, p->lda, &qsize))
        return onnxq_error(ONNXQ_E_SHAPE, "dqmm: size overflows");
    if ((st = onnxq_isa_check()) != ONNXQ_OK) return st;
    if (p->mode == ONNXQ_DQ_PER_ROW) return dqmm_per_row(packed_w, packed_size, p, k, n);
    uint8_t* q = (uint8_t*)malloc(p->m * k);
    float a_scale = 0.0f;
    int32_t a_zp = 0;
    float* mult = (float*)malloc(p->w_scale_len * sizeof(float));
    if (q == NULL || mult == NULL) {
        st = onnxq_error(ONNXQ_E_NOMEM, "dqmm: cannot allocate %zu bytes of scratch", p->m * k);
        goto done;
    }
    st = dq_impl("dqmm", p->a, p->m, k, p->lda, ONNXQ_DQ_PER_TENSOR, q, &a_scale, &a_zp);
    if (st != ONNXQ_OK) goto done;
    for (size_t j = 0; j < p->w_scale_len; ++j) mult[j] = a_scale * p->w_scale[j];
    onnxq_gemm_u8s8_params g = {0};
    g.m = p->m;
    g.a = q;
    g.lda = k;
    g.a_zp = a_zp;
    g.out_type = ONNXQ_F32;
    g.scale = mult;
    g.scale_len = p->w_scale_len;
    g.bias_f = p->bias;
    g.c = p->y;
    g.ldc = p->ldy;
    st = onnxq_gemm_u8s8_run(packed_w, packed_size, &g);
done:
    free(q);
    free(mult);
    return st;
}
