/* LSTM / GRU / RNN sequence drivers on the dynamic-quantization matmul; fp32 gate arithmetic in the
 * exact order of onnxq/kernels/reference/rnn.py (no contraction into FMA), activations through the
 * selected sigmoid / tanh micro-kernels. The inputs' projections, each step quantized on its own as
 * the reference does, run one GEMM per chunk of steps (project); the recurrent ones one per step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/internal.h"
#include "dynamic/grouped.h"
#include "onnxq/dynamic.h"
#include "onnxq/rnn.h"
#include "onnxq_kernels.h"

static int check_packed(const char* what, const char* name, const void* packed, size_t size,
                        size_t want_k, size_t want_n) {
    size_t k = 0, n = 0;
    if (packed == NULL) return onnxq_error(ONNXQ_E_ARG, "%s: %s is NULL", what, name);
    int st = onnxq_gemm_u8s8_packed_shape(packed, size, &k, &n);
    if (st != ONNXQ_OK) return st;
    if (k != want_k || n != want_n)
        return onnxq_error(ONNXQ_E_SHAPE, "%s: %s is packed as K=%zu x N=%zu, expected K=%zu x N=%zu",
                           what, name, k, n, want_k, want_n);
    return ONNXQ_OK;
}

static int check_dims(const char* what, size_t batch, size_t input, size_t hidden, int mode,
                      size_t seq_len, const float* x) {
    if (x == NULL) return onnxq_error(ONNXQ_E_ARG, "%s: x is NULL", what);
    if (batch == 0 || input == 0 || hidden == 0 || seq_len == 0)
        return onnxq_error(ONNXQ_E_SHAPE, "%s: zero-size (seq_len=%zu, batch=%zu, input=%zu, hidden=%zu)",
                           what, seq_len, batch, input, hidden);
    if (mode != ONNXQ_DQ_PER_TENSOR && mode != ONNXQ_DQ_PER_ROW)
        return onnxq_error(ONNXQ_E_ARG, "%s: mode = %d, expected 0 (per tensor) or 1 (per row)", what,
                           mode);
    size_t t, sb;
    /* scratch of about 16 * batch * hidden floats; x and y of seq_len * batch * (input, hidden) */
    if (onnxq_mul_overflow(batch, hidden, &t) || onnxq_mul_overflow(t, 16 * sizeof(float), &t) ||
        onnxq_mul_overflow(seq_len, batch, &sb) || onnxq_mul_overflow(sb, input, &t) ||
        t > (SIZE_MAX >> 3) || onnxq_mul_overflow(sb, hidden, &t) || t > (SIZE_MAX >> 3) ||
        hidden > (SIZE_MAX >> 16)) /* the projections' scratch: 256 rows x 4 gates x 16 bytes */
        return onnxq_error(ONNXQ_E_SHAPE, "%s: sizes overflow", what);
    return ONNXQ_OK;
}

/* ONNXQ_OK when every value is finite (checked up front so a failing run writes no output). */
static int check_finite(const char* what, const char* name, const float* v, size_t n) {
    if (v == NULL) return ONNXQ_OK;
    for (size_t i = 0; i < n; ++i)
        if (!isfinite(v[i]))
            return onnxq_error(ONNXQ_E_ARG, "%s: %s[%zu] = %g, expected finite values", what, name, i,
                               (double)v[i]);
    return ONNXQ_OK;
}

/* An optional array (NULL allowed) of exactly need values. */
static int check_optional(const char* what, const char* name, const float* v, size_t len,
                          size_t need) {
    return v == NULL ? ONNXQ_OK : onnxq_check_array(what, name, v, len, need, 1);
}

/* y[m, n] = dqmm(a[m, k], packed); a and y are scratch or checked arrays of exactly m rows. */
static int dqmm(const void* packed, size_t size, size_t m, const float* a, size_t k, int mode,
                const float* w_scale, size_t n, const float* bias, float* y) {
    onnxq_dqmm_params d = {
        .k = k, .n = n, .m = m, .a = a, .a_len = m * k, .lda = k, .mode = mode,
        .w_scale = w_scale, .w_scale_len = n, .bias = bias, .bias_len = bias ? n : 0,
        .y = y, .y_len = m * n, .ldy = n,
    };
    return onnxq_dqmm(packed, size, &d);
}

/* Rows of X projected by one GEMM: whole steps, at least one. One GEMM for many steps reads the
 * weights once for all of them (a step alone is a matrix-vector product at batch 1, bound by
 * reading the weights), and the arithmetic is the per-step one (onnxq_dqmm_grouped). */
#define PROJECT_ROWS 256

/* Steps per input projection for batch B. */
static size_t project_steps(size_t B, size_t seq_len) {
    const size_t steps = B < PROJECT_ROWS ? PROJECT_ROWS / B : 1;
    return steps < seq_len ? steps : seq_len;
}

/* xw[s, b, :] = dqmm(x[t0 + s, b, :], W) for the steps [t0, t0 + steps): each step's batch rows
 * quantized together (per tensor) or each row alone (per row), exactly as a dqmm per step. */
static int project(const void* packed, size_t size, const float* x, size_t t0, size_t steps,
                   size_t B, size_t I, int mode, const float* w_scale, size_t G, const float* bias,
                   float* xw) {
    const size_t m = steps * B;
    onnxq_dqmm_params d = {
        .k = I, .n = G, .m = m, .a = x + t0 * B * I, .a_len = m * I, .lda = I, .mode = mode,
        .w_scale = w_scale, .w_scale_len = G, .bias = bias, .bias_len = bias ? G : 0,
        .y = xw, .y_len = m * G, .ldy = G,
    };
    return onnxq_dqmm_grouped(packed, size, &d, mode == ONNXQ_DQ_PER_ROW ? 1 : B);
}

int onnxq_lstm(const onnxq_lstm_params* p, size_t seq_len, const float* x, size_t x_len,
               const float* h0, size_t h0_len, const float* c0, size_t c0_len, float* y,
               size_t y_len, float* h_out, size_t h_out_len, float* c_out, size_t c_out_len) {
    ONNXQ_CHECK_NOT_NULL(p, "params");
    int st = check_dims("lstm", p->batch, p->input_size, p->hidden, p->mode, seq_len, x);
    if (st != ONNXQ_OK) return st;
    const size_t B = p->batch, I = p->input_size, H = p->hidden, G = 4 * H;
    if ((st = check_packed("lstm", "w_packed", p->w_packed, p->w_packed_size, I, G)) != ONNXQ_OK ||
        (st = check_packed("lstm", "r_packed", p->r_packed, p->r_packed_size, H, G)) != ONNXQ_OK)
        return st;
    if ((st = onnxq_check_array("lstm", "w_scale", p->w_scale, p->w_scale_len, G, 1)) != ONNXQ_OK ||
        (st = onnxq_check_array("lstm", "r_scale", p->r_scale, p->r_scale_len, G, 1)) != ONNXQ_OK ||
        (st = check_optional("lstm", "w_bias", p->w_bias, p->w_bias_len, G)) != ONNXQ_OK ||
        (st = check_optional("lstm", "r_bias", p->r_bias, p->r_bias_len, G)) != ONNXQ_OK ||
        (st = onnxq_check_array("lstm", "x", x, x_len, seq_len * B * I, 1)) != ONNXQ_OK ||
        (st = check_optional("lstm", "h0", h0, h0_len, B * H)) != ONNXQ_OK ||
        (st = check_optional("lstm", "c0", c0, c0_len, B * H)) != ONNXQ_OK ||
        (st = check_optional("lstm", "y", y, y_len, seq_len * B * H)) != ONNXQ_OK ||
        (st = check_optional("lstm", "h_out", h_out, h_out_len, B * H)) != ONNXQ_OK ||
        (st = check_optional("lstm", "c_out", c_out, c_out_len, B * H)) != ONNXQ_OK)
        return st;
    if ((st = check_finite("lstm", "x", x, seq_len * B * I)) != ONNXQ_OK ||
        (st = check_finite("lstm", "h0", h0, B * H)) != ONNXQ_OK ||
        (st = check_finite("lstm", "c0", c0, B * H)) != ONNXQ_OK)
        return st;
    const onnxq_sigmoid_f32_entry* sig = onnxq_sigmoid_f32_select();
    const onnxq_tanh_f32_entry* tnh = onnxq_tanh_f32_select();
    if (sig == NULL || tnh == NULL) return onnxq_isa_check();
    const size_t cs = project_steps(B, seq_len);
    float* buf = (float*)calloc(cs * B * G + B * G + 4 * B * H + G, sizeof(float));
    if (buf == NULL) return onnxq_error(ONNXQ_E_NOMEM, "lstm: cannot allocate scratch");
    float *xws = buf, *hr = xws + cs * B * G, *h = hr + B * G, *c = h + B * H, *hn = c + B * H;
    float *cn = hn + B * H, *bias = cn + B * H;
    const int has_bias = p->w_bias != NULL || p->r_bias != NULL;
    for (size_t j = 0; j < G; ++j)
        bias[j] = (p->w_bias ? p->w_bias[j] : 0.0f) + (p->r_bias ? p->r_bias[j] : 0.0f);
    if (h0 != NULL) memcpy(h, h0, B * H * sizeof(float));
    if (c0 != NULL) memcpy(c, c0, B * H * sizeof(float));
    for (size_t t = 0; t < seq_len; ++t) {
        if (t % cs == 0)
            st = project(p->w_packed, p->w_packed_size, x, t, seq_len - t < cs ? seq_len - t : cs, B,
                         I, p->mode, p->w_scale, G, has_bias ? bias : NULL, xws);
        float* xw = xws + (t % cs) * B * G;
        if (st == ONNXQ_OK)
            st = dqmm(p->r_packed, p->r_packed_size, B, h, H, p->mode, p->r_scale, G, NULL, hr);
        if (st != ONNXQ_OK) break;
        for (size_t i = 0; i < B * G; ++i) xw[i] = xw[i] + hr[i];
        for (size_t b = 0; b < B; ++b) {
            float* g = xw + b * G; /* i, o, f, c~ */
            sig->fn(3 * H, g, g);
            tnh->fn(H, g + 3 * H, g + 3 * H);
            for (size_t j = 0; j < H; ++j) {
                const float t1 = g[2 * H + j] * c[b * H + j];
                const float t2 = g[j] * g[3 * H + j];
                cn[b * H + j] = t1 + t2;
            }
        }
        tnh->fn(B * H, cn, hr);
        for (size_t b = 0; b < B; ++b)
            for (size_t j = 0; j < H; ++j) hn[b * H + j] = xw[b * G + H + j] * hr[b * H + j];
        memcpy(h, hn, B * H * sizeof(float));
        memcpy(c, cn, B * H * sizeof(float));
        if (y != NULL) memcpy(y + t * B * H, h, B * H * sizeof(float));
    }
    if (st == ONNXQ_OK) {
        if (h_out != NULL) memcpy(h_out, h, B * H * sizeof(float));
        if (c_out != NULL) memcpy(c_out, c, B * H * sizeof(float));
    }
    free(buf);
    return st;
}

int onnxq_gru(const onnxq_gru_params* p, size_t seq_len, const float* x, size_t x_len,
              const float* h0, size_t h0_len, float* y, size_t y_len, float* h_out,
              size_t h_out_len) {
    ONNXQ_CHECK_NOT_NULL(p, "params");
    int st = check_dims("gru", p->batch, p->input_size, p->hidden, p->mode, seq_len, x);
    if (st != ONNXQ_OK) return st;
    const size_t B = p->batch, I = p->input_size, H = p->hidden, G = 3 * H;
    if ((st = check_packed("gru", "w_packed", p->w_packed, p->w_packed_size, I, G)) != ONNXQ_OK ||
        (st = check_packed("gru", "rzr_packed", p->rzr_packed, p->rzr_packed_size, H, 2 * H)) !=
            ONNXQ_OK ||
        (st = check_packed("gru", "rh_packed", p->rh_packed, p->rh_packed_size, H, H)) != ONNXQ_OK)
        return st;
    if ((st = onnxq_check_array("gru", "w_scale", p->w_scale, p->w_scale_len, G, 1)) != ONNXQ_OK ||
        (st = onnxq_check_array("gru", "r_scale", p->r_scale, p->r_scale_len, G, 1)) != ONNXQ_OK ||
        (st = check_optional("gru", "w_bias", p->w_bias, p->w_bias_len, G)) != ONNXQ_OK ||
        (st = check_optional("gru", "r_bias", p->r_bias, p->r_bias_len, G)) != ONNXQ_OK ||
        (st = onnxq_check_array("gru", "x", x, x_len, seq_len * B * I, 1)) != ONNXQ_OK ||
        (st = check_optional("gru", "h0", h0, h0_len, B * H)) != ONNXQ_OK ||
        (st = check_optional("gru", "y", y, y_len, seq_len * B * H)) != ONNXQ_OK ||
        (st = check_optional("gru", "h_out", h_out, h_out_len, B * H)) != ONNXQ_OK)
        return st;
    if ((st = check_finite("gru", "x", x, seq_len * B * I)) != ONNXQ_OK ||
        (st = check_finite("gru", "h0", h0, B * H)) != ONNXQ_OK)
        return st;
    const onnxq_sigmoid_f32_entry* sig = onnxq_sigmoid_f32_select();
    const onnxq_tanh_f32_entry* tnh = onnxq_tanh_f32_select();
    if (sig == NULL || tnh == NULL) return onnxq_isa_check();
    const size_t cs = project_steps(B, seq_len);
    float* buf = (float*)calloc(cs * B * G + 2 * B * H + 4 * B * H + G + H, sizeof(float));
    if (buf == NULL) return onnxq_error(ONNXQ_E_NOMEM, "gru: cannot allocate scratch");
    float *xws = buf, *hzr = xws + cs * B * G, *hh = hzr + 2 * B * H, *h = hh + B * H, *rh = h + B * H;
    float *hn = rh + B * H, *bias = hn + B * H, *rbh = bias + G;
    const int has_bias = p->w_bias != NULL || p->r_bias != NULL;
    for (size_t j = 0; j < G; ++j) {
        const float wb = p->w_bias ? p->w_bias[j] : 0.0f, rb = p->r_bias ? p->r_bias[j] : 0.0f;
        bias[j] = (p->linear_before_reset && j >= 2 * H) ? wb : wb + rb;
    }
    for (size_t j = 0; j < H; ++j) rbh[j] = p->r_bias ? p->r_bias[2 * H + j] : 0.0f;
    if (h0 != NULL) memcpy(h, h0, B * H * sizeof(float));
    for (size_t t = 0; t < seq_len && st == ONNXQ_OK; ++t) {
        if (t % cs == 0)
            st = project(p->w_packed, p->w_packed_size, x, t, seq_len - t < cs ? seq_len - t : cs, B,
                         I, p->mode, p->w_scale, G, has_bias ? bias : NULL, xws);
        const float* xw = xws + (t % cs) * B * G;
        if (st == ONNXQ_OK)
            st = dqmm(p->rzr_packed, p->rzr_packed_size, B, h, H, p->mode, p->r_scale, 2 * H, NULL,
                      hzr);
        if (st != ONNXQ_OK) break;
        /* z and r: hzr[b, 0:H] = z, hzr[b, H:2H] = r */
        for (size_t b = 0; b < B; ++b)
            for (size_t j = 0; j < 2 * H; ++j) hzr[b * 2 * H + j] = xw[b * G + j] + hzr[b * 2 * H + j];
        sig->fn(2 * B * H, hzr, hzr);
        if (p->linear_before_reset) {
            st = dqmm(p->rh_packed, p->rh_packed_size, B, h, H, p->mode, p->r_scale + 2 * H, H,
                      has_bias ? rbh : NULL, hh);
            if (st != ONNXQ_OK) break;
            for (size_t i = 0; i < B * H; ++i) {
                const size_t b = i / H, j = i % H;
                hh[i] = xw[b * G + 2 * H + j] + hzr[b * 2 * H + H + j] * hh[i];
            }
        } else {
            for (size_t i = 0; i < B * H; ++i) rh[i] = hzr[(i / H) * 2 * H + H + i % H] * h[i];
            st = dqmm(p->rh_packed, p->rh_packed_size, B, rh, H, p->mode, p->r_scale + 2 * H, H,
                      NULL, hh);
            if (st != ONNXQ_OK) break;
            for (size_t i = 0; i < B * H; ++i) {
                const size_t b = i / H, j = i % H;
                hh[i] = xw[b * G + 2 * H + j] + hh[i];
            }
        }
        tnh->fn(B * H, hh, hh);
        for (size_t i = 0; i < B * H; ++i) {
            const float z = hzr[(i / H) * 2 * H + i % H];
            const float t1 = (1.0f - z) * hh[i];
            const float t2 = z * h[i];
            hn[i] = t1 + t2;
        }
        memcpy(h, hn, B * H * sizeof(float));
        if (y != NULL) memcpy(y + t * B * H, h, B * H * sizeof(float));
    }
    if (st == ONNXQ_OK && h_out != NULL) memcpy(h_out, h, B * H * sizeof(float));
    free(buf);
    return st;
}

int onnxq_rnn(const onnxq_rnn_params* p, size_t seq_len, const float* x, size_t x_len,
              const float* h0, size_t h0_len, float* y, size_t y_len, float* h_out,
              size_t h_out_len) {
    ONNXQ_CHECK_NOT_NULL(p, "params");
    int st = check_dims("rnn", p->batch, p->input_size, p->hidden, p->mode, seq_len, x);
    if (st != ONNXQ_OK) return st;
    const size_t B = p->batch, I = p->input_size, H = p->hidden;
    if ((st = check_packed("rnn", "w_packed", p->w_packed, p->w_packed_size, I, H)) != ONNXQ_OK ||
        (st = check_packed("rnn", "r_packed", p->r_packed, p->r_packed_size, H, H)) != ONNXQ_OK)
        return st;
    if ((st = onnxq_check_array("rnn", "w_scale", p->w_scale, p->w_scale_len, H, 1)) != ONNXQ_OK ||
        (st = onnxq_check_array("rnn", "r_scale", p->r_scale, p->r_scale_len, H, 1)) != ONNXQ_OK ||
        (st = check_optional("rnn", "w_bias", p->w_bias, p->w_bias_len, H)) != ONNXQ_OK ||
        (st = check_optional("rnn", "r_bias", p->r_bias, p->r_bias_len, H)) != ONNXQ_OK ||
        (st = onnxq_check_array("rnn", "x", x, x_len, seq_len * B * I, 1)) != ONNXQ_OK ||
        (st = check_optional("rnn", "h0", h0, h0_len, B * H)) != ONNXQ_OK ||
        (st = check_optional("rnn", "y", y, y_len, seq_len * B * H)) != ONNXQ_OK ||
        (st = check_optional("rnn", "h_out", h_out, h_out_len, B * H)) != ONNXQ_OK)
        return st;
    if ((st = check_finite("rnn", "x", x, seq_len * B * I)) != ONNXQ_OK ||
        (st = check_finite("rnn", "h0", h0, B * H)) != ONNXQ_OK)
        return st;
    const onnxq_tanh_f32_entry* tnh = onnxq_tanh_f32_select();
    if (tnh == NULL) return onnxq_isa_check();
    const size_t cs = project_steps(B, seq_len);
    float* buf = (float*)calloc(cs * B * H + 2 * B * H + H, sizeof(float));
    if (buf == NULL) return onnxq_error(ONNXQ_E_NOMEM, "rnn: cannot allocate scratch");
    float *xws = buf, *hr = xws + cs * B * H, *h = hr + B * H, *bias = h + B * H;
    const int has_bias = p->w_bias != NULL || p->r_bias != NULL;
    for (size_t j = 0; j < H; ++j)
        bias[j] = (p->w_bias ? p->w_bias[j] : 0.0f) + (p->r_bias ? p->r_bias[j] : 0.0f);
    if (h0 != NULL) memcpy(h, h0, B * H * sizeof(float));
    for (size_t t = 0; t < seq_len; ++t) {
        if (t % cs == 0)
            st = project(p->w_packed, p->w_packed_size, x, t, seq_len - t < cs ? seq_len - t : cs, B,
                         I, p->mode, p->w_scale, H, has_bias ? bias : NULL, xws);
        float* xw = xws + (t % cs) * B * H;
        if (st == ONNXQ_OK)
            st = dqmm(p->r_packed, p->r_packed_size, B, h, H, p->mode, p->r_scale, H, NULL, hr);
        if (st != ONNXQ_OK) break;
        for (size_t i = 0; i < B * H; ++i) xw[i] = xw[i] + hr[i];
        tnh->fn(B * H, xw, h);
        if (y != NULL) memcpy(y + t * B * H, h, B * H * sizeof(float));
    }
    if (st == ONNXQ_OK && h_out != NULL) memcpy(h_out, h, B * H * sizeof(float));
    free(buf);
    return st;
}
