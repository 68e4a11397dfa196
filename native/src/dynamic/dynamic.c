/* Dynamic quantization of fp32 activations and the dynamic-quantization matmul (validation, range,
 * quantize via onnxq_quantize, then the u8s8 GEMM with fp32 output). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/internal.h"
#include "dynamic/grouped.h"
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
    onnxq_quant_params qp = {1, 1, cols, &scale, 1, &zp, 1, ONNXQ_U8};
    if (ldx == cols) {
        qp.inner = rows * cols;
        return onnxq_quantize(&qp, x, rows * cols, q, rows * cols);
    }
    for (size_t r = 0; r < rows; ++r) {
        int st = onnxq_quantize(&qp, x + r * ldx, cols, q + r * cols, cols);
        if (st != ONNXQ_OK) return st;
    }
    return ONNXQ_OK;
}

/* The range of the rows seen so far is [lo, hi]: error unless every value was finite (the minmax
 * kernels turn lo and hi into NaN when they meet a NaN; infinities show in lo / hi). */
static int check_range(const char* what, const char* name, size_t row, float lo, float hi) {
    if (isfinite(lo) && isfinite(hi)) return ONNXQ_OK;
    return onnxq_error(ONNXQ_E_ARG, "%s: %s row %zu contains NaN or infinity (range [%g, %g]); "
                       "expected finite values", what, name, row, (double)lo, (double)hi);
}

static int check_scale(const char* what, const char* name, size_t row, float lo, float hi,
                       float scale) {
    if (scale > 0.0f && isfinite(scale)) return ONNXQ_OK;
    return onnxq_error(ONNXQ_E_ARG, "%s: %s row %zu has range [%g, %g], whose scale (hi - lo) / 255"
                       " = %g is not a finite value > 0; expected finite values", what, name, row,
                       (double)lo, (double)hi, (double)scale);
}

/* Quantization parameters of x: 1 (per tensor) or rows (per row) values into scale / zp. Reads x
 * only; every value is checked, so a failure leaves the caller's outputs untouched. */
static int dq_params(const char* what, const char* name, const float* x, size_t rows, size_t cols,
                     size_t ldx, int mode, float* scale, int32_t* zp) {
    const onnxq_minmax_f32_entry* e = onnxq_minmax_f32_select();
    if (e == NULL) return onnxq_isa_check();
    int st;
    if (mode == ONNXQ_DQ_PER_TENSOR) {
        float lo = INFINITY, hi = -INFINITY;
        for (size_t r = 0; r < rows; ++r) {
            e->fn(cols, x + r * ldx, &lo, &hi);
            if ((st = check_range(what, name, r, lo, hi)) != ONNXQ_OK) return st;
        }
        choose(lo, hi, &scale[0], &zp[0]);
        return check_scale(what, name, 0, lo, hi, scale[0]);
    }
    for (size_t r = 0; r < rows; ++r) {
        float lo = INFINITY, hi = -INFINITY;
        e->fn(cols, x + r * ldx, &lo, &hi);
        if ((st = check_range(what, name, r, lo, hi)) != ONNXQ_OK) return st;
        choose(lo, hi, &scale[r], &zp[r]);
        if ((st = check_scale(what, name, r, lo, hi, scale[r])) != ONNXQ_OK) return st;
    }
    return ONNXQ_OK;
}

/* q = quantize(x) with the parameters of dq_params. */
static int dq_apply(const float* x, size_t rows, size_t cols, size_t ldx, int mode,
                    const float* scale, const int32_t* zp, uint8_t* q) {
    if (mode == ONNXQ_DQ_PER_TENSOR) return quantize_rows(x, rows, cols, ldx, scale[0], zp[0], q);
    for (size_t r = 0; r < rows; ++r) {
        int st = quantize_rows(x + r * ldx, 1, cols, cols, scale[r], zp[r], q + r * cols);
        if (st != ONNXQ_OK) return st;
    }
    return ONNXQ_OK;
}

int onnxq_dynamic_quantize(const float* x, size_t x_len, size_t rows, size_t cols, size_t ldx,
                           int mode, uint8_t* q, size_t q_len, float* scale, int32_t* zp,
                           size_t qparams_len) {
    const char* what = "dynamic_quantize";
    if (mode != ONNXQ_DQ_PER_TENSOR && mode != ONNXQ_DQ_PER_ROW)
        return onnxq_error(ONNXQ_E_ARG, "dynamic_quantize: mode = %d, expected 0 (per tensor) or 1 "
                           "(per row)", mode);
    if (rows == 0 || cols == 0)
        return onnxq_error(ONNXQ_E_SHAPE, "dynamic_quantize: zero-size input (%zu x %zu)", rows, cols);
    if (ldx < cols)
        return onnxq_error(ONNXQ_E_SHAPE, "dynamic_quantize: ldx = %zu < cols = %zu", ldx, cols);
    size_t x_need, q_need;
    if (onnxq_span(rows, cols, ldx, &x_need) || x_need > (SIZE_MAX >> 3) ||
        onnxq_mul_overflow(rows, cols, &q_need))
        return onnxq_error(ONNXQ_E_SHAPE, "dynamic_quantize: size overflows");
    const size_t nparams = mode == ONNXQ_DQ_PER_ROW ? rows : 1;
    int st;
    if ((st = onnxq_check_array(what, "x", x, x_len, x_need, 0)) != ONNXQ_OK ||
        (st = onnxq_check_array(what, "q", q, q_len, q_need, 1)) != ONNXQ_OK ||
        (st = onnxq_check_array(what, "scale", scale, qparams_len, nparams, 1)) != ONNXQ_OK ||
        (st = onnxq_check_array(what, "zero_point", zp, qparams_len, nparams, 1)) != ONNXQ_OK)
        return st;
    if ((st = onnxq_isa_check()) != ONNXQ_OK) return st;
    float* s = (float*)malloc(nparams * sizeof(float));
    int32_t* z = (int32_t*)malloc(nparams * sizeof(int32_t));
    if (s == NULL || z == NULL) {
        st = onnxq_error(ONNXQ_E_NOMEM, "dynamic_quantize: cannot allocate %zu parameters", nparams);
    } else {
        st = dq_params(what, "a", x, rows, cols, ldx, mode, s, z);
        if (st == ONNXQ_OK) st = dq_apply(x, rows, cols, ldx, mode, s, z, q);
        if (st == ONNXQ_OK) {
            memcpy(scale, s, nparams * sizeof(float));
            memcpy(zp, z, nparams * sizeof(int32_t));
        }
    }
    free(s);
    free(z);
    return st;
}

/* Rows quantized in groups of `group` consecutive rows, each group with its own parameters (per
 * row: 1; the per-step projections of a recurrent op's inputs: the batch): one int32 GEMM for all
 * rows (zero point 0), then the group's zero-point correction acc = sum(q * w) - a_zp[g] *
 * colsum(w) and the fp32 scaling the GEMM's fp32 output would do: y = (float)acc * (a_scale[g] *
 * w_scale[n]) (+ bias[n]). Every group's values are those of a per-tensor onnxq_dqmm on its rows
 * (the same int32 modulo 2^32, the same two fp32 operations). p is checked by the caller. */
int onnxq_dqmm_grouped(const void* packed_w, size_t packed_size, const onnxq_dqmm_params* p,
                       size_t group) {
    int st = ONNXQ_OK;
    const size_t m = p->m, k = p->k, n = p->n;
    if (group == 0 || m % group != 0)
        return onnxq_error(ONNXQ_E_SHAPE, "dqmm: %zu rows are not groups of %zu", m, group);
    const size_t ng = m / group;
    for (size_t j = 0; j < p->w_scale_len; ++j)
        if (!(p->w_scale[j] > 0.0f) || !isfinite(p->w_scale[j]))
            return onnxq_error(ONNXQ_E_ARG, "dqmm: w_scale[%zu] = %g, expected a finite value > 0", j,
                               (double)p->w_scale[j]);
    const onnxq_minmax_f32_entry* e = onnxq_minmax_f32_select();
    if (e == NULL) return onnxq_isa_check();
    uint8_t* q = (uint8_t*)malloc(m * k);
    float* a_scale = (float*)malloc(ng * sizeof(float));
    int32_t* a_zp = (int32_t*)malloc(ng * sizeof(int32_t));
    int32_t* acc = (int32_t*)malloc((m + 1) * n * sizeof(int32_t));
    if (q == NULL || a_scale == NULL || a_zp == NULL || acc == NULL) {
        st = onnxq_error(ONNXQ_E_NOMEM, "dqmm: cannot allocate scratch for %zu x %zu", m, n);
        goto done;
    }
    for (size_t g = 0; g < ng && st == ONNXQ_OK; ++g) {
        float lo = INFINITY, hi = -INFINITY;
        for (size_t r = g * group; r < (g + 1) * group && st == ONNXQ_OK; ++r) {
            e->fn(k, p->a + r * p->lda, &lo, &hi);
            st = check_range("dqmm", "a", r, lo, hi);
        }
        if (st != ONNXQ_OK) break;
        choose(lo, hi, &a_scale[g], &a_zp[g]);
        st = check_scale("dqmm", "a", g * group, lo, hi, a_scale[g]);
        if (st == ONNXQ_OK)
            st = quantize_rows(p->a + g * group * p->lda, group, k, p->lda, a_scale[g], a_zp[g],
                               q + g * group * k);
    }
    if (st != ONNXQ_OK) goto done;
    int32_t* colsum = acc + m * n;
    if ((st = onnxq_gemm_u8s8_packed_colsum(packed_w, packed_size, k, n, colsum, n)) != ONNXQ_OK)
        goto done;
    onnxq_gemm_u8s8_params gp = {0};
    gp.k = k;
    gp.n = n;
    gp.m = m;
    gp.a = q;
    gp.a_len = m * k;
    gp.lda = k;
    gp.out_type = ONNXQ_I32;
    gp.c = acc;
    gp.c_len = m * n;
    gp.ldc = n;
    if ((st = onnxq_gemm_u8s8_run(packed_w, packed_size, &gp)) != ONNXQ_OK) goto done;
    for (size_t r = 0; r < m; ++r) {
        const size_t g = r / group;
        float* y = p->y + r * p->ldy;
        const int32_t* ar = acc + r * n;
        for (size_t j = 0; j < n; ++j) {
            const int32_t a = (int32_t)((int64_t)ar[j] - (int64_t)a_zp[g] * colsum[j]);
            const float s = a_scale[g] * p->w_scale[p->w_scale_len == 1 ? 0 : j];
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
    size_t k = 0, n = 0;
    int st = onnxq_gemm_u8s8_packed_shape(packed_w, packed_size, &k, &n);
    if (st != ONNXQ_OK) return st;
    if (k != p->k || n != p->n)
        return onnxq_error(ONNXQ_E_SHAPE, "dqmm: packed weights are K=%zu x N=%zu, the caller says "
                           "K=%zu x N=%zu", k, n, p->k, p->n);
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
    size_t qsize, a_need, y_need;
    if (onnxq_mul_overflow(p->m, k, &qsize) || onnxq_mul_overflow(p->m + 1, n, &qsize) ||
        qsize > (SIZE_MAX >> 3) || onnxq_span(p->m, k, p->lda, &a_need) ||
        a_need > (SIZE_MAX >> 3) || onnxq_span(p->m, n, p->ldy, &y_need) || y_need > (SIZE_MAX >> 3))
        return onnxq_error(ONNXQ_E_SHAPE, "dqmm: size overflows");
    if ((st = onnxq_check_array("dqmm", "a", p->a, p->a_len, a_need, 0)) != ONNXQ_OK ||
        (st = onnxq_check_array("dqmm", "y", p->y, p->y_len, y_need, 0)) != ONNXQ_OK ||
        (st = onnxq_check_array("dqmm", "w_scale", p->w_scale, p->w_scale_len, p->w_scale_len, 1)) !=
            ONNXQ_OK)
        return st;
    if (p->bias != NULL && (st = onnxq_check_array("dqmm", "bias", p->bias, p->bias_len, n, 1)) != ONNXQ_OK)
        return st;
    for (size_t j = 0; j < p->w_scale_len; ++j)
        if (!(p->w_scale[j] > 0.0f) || !isfinite(p->w_scale[j]))
            return onnxq_error(ONNXQ_E_ARG, "dqmm: w_scale[%zu] = %g, expected a finite value > 0", j,
                               (double)p->w_scale[j]);
    if ((st = onnxq_isa_check()) != ONNXQ_OK) return st;
    if (p->mode == ONNXQ_DQ_PER_ROW) return onnxq_dqmm_grouped(packed_w, packed_size, p, 1);
    uint8_t* q = (uint8_t*)malloc(p->m * k);
    float a_scale = 0.0f;
    int32_t a_zp = 0;
    float* mult = (float*)malloc(p->w_scale_len * sizeof(float));
    if (q == NULL || mult == NULL) {
        st = onnxq_error(ONNXQ_E_NOMEM, "dqmm: cannot allocate %zu bytes of scratch", p->m * k);
        goto done;
    }
    st = dq_params("dqmm", "a", p->a, p->m, k, p->lda, ONNXQ_DQ_PER_TENSOR, &a_scale, &a_zp);
    if (st == ONNXQ_OK) st = dq_apply(p->a, p->m, k, p->lda, ONNXQ_DQ_PER_TENSOR, &a_scale, &a_zp, q);
    if (st != ONNXQ_OK) goto done;
    for (size_t j = 0; j < p->w_scale_len; ++j) mult[j] = a_scale * p->w_scale[j];
    onnxq_gemm_u8s8_params g = {0};
    g.k = k;
    g.n = n;
    g.m = p->m;
    g.a = q;
    g.a_len = p->m * k;
    g.lda = k;
    g.a_zp = a_zp;
    g.out_type = ONNXQ_F32;
    g.scale = mult;
    g.scale_len = p->w_scale_len;
    g.bias_f = p->bias;
    g.bias_f_len = p->bias != NULL ? n : 0;
    g.c = p->y;
    g.c_len = p->y_len;
    g.ldc = p->ldy;
    st = onnxq_gemm_u8s8_run(packed_w, packed_size, &g);
done:
    free(q);
    free(mult);
    return st;
}
