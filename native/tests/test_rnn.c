/* C tests of the LSTM / GRU drivers: ISAs agree bit for bit, a zero-weight cell gives the closed
 * form, the activations are accurate, bad arguments fail cleanly. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onnxq/dynamic.h"
#include "onnxq/rnn.h"
#include "rnn/act.h"
#include "test_util.h"

/* a multiple of 0.001 in [-1, 1] */
static float rndf(void) { return (float)onnxq_test_rand_int(-1000, 1000) / 1000.0f; }

typedef struct packed_buf {
    void* data;
    size_t size;
} packed_buf;

/* Packs rows x cols int8 weights (ONNX rows) as a GEMM with K = cols, N = rows. */
static packed_buf pack(const int8_t* w, size_t rows, size_t cols) {
    packed_buf b;
    b.size = onnxq_gemm_u8s8_packed_size(cols, rows);
    b.data = aligned_alloc(64, (b.size + 63) / 64 * 64);
    const int st = onnxq_gemm_u8s8_pack(w, rows * cols, cols, rows, 1, (ptrdiff_t)cols, 0, b.data, b.size);
    ONNXQ_EXPECT(st == ONNXQ_OK, "%s", onnxq_last_error());
    return b;
}

static void test_activations(void) {
    double worst = 0.0;
    for (float x = -20.0f; x <= 20.0f; x += 0.01f) {
        const double e = fabs((double)onnxq_exp_f32(x) - exp((double)x)) / exp((double)x);
        worst = e > worst ? e : worst;
        ONNXQ_EXPECT(fabs((double)onnxq_tanh_f32(x) - tanh((double)x)) < 2e-7, "tanh(%g)",
                     (double)x);
        ONNXQ_EXPECT(fabs((double)onnxq_sigmoid_f32(x) - 1.0 / (1.0 + exp(-(double)x))) < 2e-7,
                     "sigmoid(%g)", (double)x);
    }
    ONNXQ_EXPECT(worst < 3e-7, "exp relative error %g", worst);
    ONNXQ_EXPECT(onnxq_exp_f32(-1000.0f) > 0.0f && isfinite(onnxq_exp_f32(1000.0f)), "exp clamps");
}

static void test_isas_agree(void) {
    const size_t B = 3, I = 10, H = 17, T = 4;
    int8_t w[4 * 17 * 10], r[4 * 17 * 17];
    float ws[4 * 17], rs[4 * 17], wb[4 * 17], rb[4 * 17], x[4 * 3 * 10], h0[3 * 17], c0[3 * 17];
    onnxq_test_fill_s8(w, sizeof w, -128, 127);
    onnxq_test_fill_s8(r, sizeof r, -128, 127);
    for (size_t i = 0; i < 4 * H; ++i) ws[i] = 0.002f + (float)onnxq_test_rand_int(0, 99) * 1e-4f;
    for (size_t i = 0; i < 4 * H; ++i) rs[i] = 0.002f + (float)onnxq_test_rand_int(0, 99) * 1e-4f;
    for (size_t i = 0; i < 4 * H; ++i) wb[i] = rndf(), rb[i] = rndf();
    for (size_t i = 0; i < T * B * I; ++i) x[i] = rndf();
    for (size_t i = 0; i < B * H; ++i) h0[i] = rndf(), c0[i] = rndf();
    packed_buf pw = pack(w, 4 * H, I), pr = pack(r, 4 * H, H);
    packed_buf gw = pack(w, 3 * H, I), gzr = pack(r, 2 * H, H), gh = pack(r + 2 * H * H, H, H);
    float want[4 * 3 * 17], got[4 * 3 * 17], cw[3 * 17], cg[3 * 17];
    for (int mode = 0; mode < 2; ++mode)
        for (int cell = 0; cell < 3; ++cell) {
            onnxq_lstm_params lp = {B,  I,       H,       mode, pw.data, pw.size, ws, 4 * H, pr.data,
                                    pr.size, rs, 4 * H, wb, 4 * H, rb,      4 * H};
            onnxq_gru_params gp = {B,       I,        H,       mode,    cell == 2, gw.data,
                                   gw.size, ws,       3 * H,   gzr.data, gzr.size, gh.data,
                                   gh.size, rs,       3 * H,   wb,       3 * H,     rb, 3 * H};
            const size_t xn = T * B * I, yn = T * B * H, sn = B * H;
            onnxq_isa_set("scalar");
            int st = cell == 0 ? onnxq_lstm(&lp, T, x, xn, h0, sn, c0, sn, want, yn, NULL, 0, cw, sn)
                               : onnxq_gru(&gp, T, x, xn, h0, sn, want, yn, NULL, 0);
            ONNXQ_EXPECT(st == ONNXQ_OK, "%s", onnxq_last_error());
            ONNXQ_TEST_FOREACH_ISA(isa) {
                st = cell == 0 ? onnxq_lstm(&lp, T, x, xn, h0, sn, c0, sn, got, yn, NULL, 0, cg, sn)
                               : onnxq_gru(&gp, T, x, xn, h0, sn, got, yn, NULL, 0);
                ONNXQ_EXPECT(st == ONNXQ_OK, "%s", onnxq_last_error());
                ONNXQ_EXPECT(memcmp(got, want, sizeof got) == 0, "cell %d mode %d: isa %s differs",
                             cell, mode, onnxq_isa_name(isa));
                if (cell == 0) ONNXQ_EXPECT(memcmp(cg, cw, sizeof cg) == 0, "lstm c differs");
            }
        }
    onnxq_isa_set(NULL);
    free(pw.data), free(pr.data), free(gw.data), free(gzr.data), free(gh.data);
}

static void test_zero_weights_closed_form(void) {
    /* W = R = 0, no bias: every gate is sigmoid(0) = 0.5, c~ = 0: c = 0.5 * c0, h = 0.5 tanh(c) */
    int8_t w[8 * 3] = {0}, r[8 * 2] = {0};
    float ws[8], x[3] = {1, -2, 3}, h0[2] = {0.3f, -0.4f}, c0[2] = {0.8f, -0.6f}, y[2], c[2];
    for (int i = 0; i < 8; ++i) ws[i] = 0.01f;
    packed_buf pw = pack(w, 8, 3), pr = pack(r, 8, 2);
    onnxq_lstm_params lp = {1, 3, 2, 0, pw.data, pw.size, ws, 8, pr.data, pr.size, ws, 8, NULL, 0,
                            NULL, 0};
    ONNXQ_EXPECT(onnxq_lstm(&lp, 1, x, 3, h0, 2, c0, 2, y, 2, NULL, 0, c, 2) == ONNXQ_OK, "%s",
                 onnxq_last_error());
    ONNXQ_EXPECT(c[0] == 0.4f && c[1] == -0.3f, "c %g %g", (double)c[0], (double)c[1]);
    ONNXQ_EXPECT(fabsf(y[0] - 0.5f * tanhf(0.4f)) < 1e-7f, "h %g", (double)y[0]);
    free(pw.data), free(pr.data);
}

static void test_bad_arguments(void) {
    int8_t w[8 * 3] = {0};
    float ws[8] = {1, 1, 1, 1, 1, 1, 1, 1}, x[6] = {0}, y[4] = {7, 7, 7, 7}, bias[8] = {0};
    packed_buf pw = pack(w, 8, 3), pr = pack(w, 8, 2);
    const onnxq_lstm_params ok = {1, 3, 2, 0, pw.data, pw.size, ws, 8, pr.data, pr.size, ws, 8,
                                  NULL, 0, NULL, 0};
    onnxq_lstm_params lp = ok;
    lp.input_size = 4;
    ONNXQ_EXPECT(onnxq_lstm(&lp, 1, x, 4, NULL, 0, NULL, 0, y, 2, NULL, 0, NULL, 0) == ONNXQ_E_SHAPE,
                 "input size");
    ONNXQ_EXPECT(strstr(onnxq_last_error(), "w_packed is packed as K=3") != NULL, "msg %s",
                 onnxq_last_error());
    lp.input_size = 3;
    ONNXQ_EXPECT(onnxq_lstm(&lp, 0, x, 0, NULL, 0, NULL, 0, y, 0, NULL, 0, NULL, 0) == ONNXQ_E_SHAPE,
                 "seq_len 0");
    ONNXQ_EXPECT(onnxq_lstm(&lp, 1, NULL, 3, NULL, 0, NULL, 0, y, 2, NULL, 0, NULL, 0) == ONNXQ_E_ARG,
                 "NULL x");
    lp.mode = 3;
    ONNXQ_EXPECT(onnxq_lstm(&lp, 1, x, 3, NULL, 0, NULL, 0, y, 2, NULL, 0, NULL, 0) == ONNXQ_E_ARG,
                 "mode");
    lp.mode = 0;
    lp.r_packed = NULL;
    ONNXQ_EXPECT(onnxq_lstm(&lp, 1, x, 3, NULL, 0, NULL, 0, y, 2, NULL, 0, NULL, 0) == ONNXQ_E_ARG,
                 "NULL r_packed");
    onnxq_gru_params gp = {1, 3, 2, 0, 0, pw.data, pw.size, ws, 6, pr.data, pr.size, pr.data,
                           pr.size, ws, 6, NULL, 0, NULL, 0};
    ONNXQ_EXPECT(onnxq_gru(&gp, 1, x, 3, NULL, 0, y, 2, NULL, 0) == ONNXQ_E_SHAPE,
                 "gru w rows (8 != 6)");
    lp = ok;
    x[4] = NAN;
    ONNXQ_EXPECT(onnxq_lstm(&lp, 2, x, 6, NULL, 0, NULL, 0, y, 4, NULL, 0, NULL, 0) == ONNXQ_E_ARG,
                 "NaN in x");
    ONNXQ_EXPECT(strstr(onnxq_last_error(), "x[4] = nan") != NULL, "msg %s", onnxq_last_error());
    x[4] = 0;
    /* every length is checked: short biases and scales (the over-read of a bias shorter than 4H),
     * short or long x / states / outputs */
    lp = ok, lp.w_bias = bias, lp.w_bias_len = 7;
    ONNXQ_EXPECT(onnxq_lstm(&lp, 1, x, 3, NULL, 0, NULL, 0, y, 2, NULL, 0, NULL, 0) == ONNXQ_E_SHAPE,
                 "w_bias of 7 < 4H values");
    ONNXQ_EXPECT(strstr(onnxq_last_error(), "w_bias has 7 values, expected 8") != NULL, "msg %s",
                 onnxq_last_error());
    lp = ok, lp.r_bias = bias, lp.r_bias_len = 2;
    ONNXQ_EXPECT(onnxq_lstm(&lp, 1, x, 3, NULL, 0, NULL, 0, y, 2, NULL, 0, NULL, 0) == ONNXQ_E_SHAPE,
                 "r_bias of 2 values");
    lp = ok, lp.r_scale_len = 4;
    ONNXQ_EXPECT(onnxq_lstm(&lp, 1, x, 3, NULL, 0, NULL, 0, y, 2, NULL, 0, NULL, 0) == ONNXQ_E_SHAPE,
                 "r_scale of 4 values");
    lp = ok, lp.w_scale = NULL;
    ONNXQ_EXPECT(onnxq_lstm(&lp, 1, x, 3, NULL, 0, NULL, 0, y, 2, NULL, 0, NULL, 0) == ONNXQ_E_ARG,
                 "NULL w_scale");
    lp = ok;
    ONNXQ_EXPECT(onnxq_lstm(&lp, 2, x, 5, NULL, 0, NULL, 0, y, 4, NULL, 0, NULL, 0) == ONNXQ_E_SHAPE,
                 "short x");
    ONNXQ_EXPECT(onnxq_lstm(&lp, 1, x, 3, x, 1, NULL, 0, y, 2, NULL, 0, NULL, 0) == ONNXQ_E_SHAPE,
                 "short h0");
    ONNXQ_EXPECT(onnxq_lstm(&lp, 1, x, 3, NULL, 0, x, 3, y, 2, NULL, 0, NULL, 0) == ONNXQ_E_SHAPE,
                 "long c0");
    ONNXQ_EXPECT(onnxq_lstm(&lp, 2, x, 6, NULL, 0, NULL, 0, y, 2, NULL, 0, NULL, 0) == ONNXQ_E_SHAPE,
                 "short y");
    ONNXQ_EXPECT(onnxq_lstm(&lp, 1, x, 3, NULL, 0, NULL, 0, y, 2, y, 1, NULL, 0) == ONNXQ_E_SHAPE,
                 "short h_out");
    ONNXQ_EXPECT(onnxq_lstm(&lp, 1, x, 3, NULL, 0, NULL, 0, y, 2, NULL, 0, y, 3) == ONNXQ_E_SHAPE,
                 "long c_out");
    gp.w_packed = NULL;
    packed_buf gw = pack(w, 6, 3), gzr = pack(w, 4, 2), gh = pack(w, 2, 2);
    const onnxq_gru_params gok = {1, 3, 2, 0, 1, gw.data, gw.size, ws, 6, gzr.data, gzr.size,
                                  gh.data, gh.size, ws, 6, NULL, 0, NULL, 0};
    gp = gok;
    ONNXQ_EXPECT(onnxq_gru(&gp, 1, x, 3, NULL, 0, y, 2, NULL, 0) == ONNXQ_OK, "gru: %s",
                 onnxq_last_error());
    gp = gok, gp.r_bias = bias, gp.r_bias_len = 5;
    ONNXQ_EXPECT(onnxq_gru(&gp, 1, x, 3, NULL, 0, y, 2, NULL, 0) == ONNXQ_E_SHAPE,
                 "gru r_bias of 5 < 3H values");
    gp = gok, gp.w_scale_len = 8;
    ONNXQ_EXPECT(onnxq_gru(&gp, 1, x, 3, NULL, 0, y, 2, NULL, 0) == ONNXQ_E_SHAPE,
                 "gru w_scale of 8 values");
    gp = gok, gp.rh_packed = gzr.data, gp.rh_packed_size = gzr.size;
    ONNXQ_EXPECT(onnxq_gru(&gp, 1, x, 3, NULL, 0, y, 2, NULL, 0) == ONNXQ_E_SHAPE,
                 "gru rh packed as 2H rows");
    gp = gok;
    ONNXQ_EXPECT(onnxq_gru(&gp, 1, x, 3, NULL, 0, y, 2, y, 3) == ONNXQ_E_SHAPE, "gru long h_out");
    for (int i = 0; i < 4; ++i) ONNXQ_EXPECT(y[i] == 7.0f || i < 2, "output touched on error");
    free(pw.data), free(pr.data), free(gw.data), free(gzr.data), free(gh.data);
}

void onnxq_test_rnn(void) {
    test_activations();
    test_isas_agree();
    test_zero_weights_closed_form();
    test_bad_arguments();
}
