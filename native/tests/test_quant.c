/* quant family: every ISA bit-exact with scalar on random sizes, edge values, bad input. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

static const int32_t u8_zps[] = {0, 128, 255, 37};
static const int32_t s8_zps[] = {-128, 0, 127, -5};

/* Random values, exact halves of the scale, NaN, infinities, huge values. */
static void fill_inputs(float* x, size_t n, float scale) {
    for (size_t i = 0; i < n; ++i) {
        const int kind = onnxq_test_rand_int(0, 9);
        if (kind < 6)
            x[i] = onnxq_test_rand_float(-300.0f, 300.0f) * scale;
        else if (kind == 6)
            x[i] = ((float)onnxq_test_rand_int(-300, 300) + 0.5f) * scale;
        else if (kind == 7)
            x[i] = (float)onnxq_test_rand_int(-2, 2) * 1e30f;
        else if (kind == 8)
            x[i] = (i & 1) ? INFINITY : -INFINITY;
        else
            x[i] = (i & 1) ? NAN : -0.0f;
    }
}

static void check_quantize(int qtype, size_t outer, size_t channels, size_t inner) {
    const size_t n = outer * channels * inner;
    float* x = malloc(n * sizeof *x);
    uint8_t* want = malloc(n);
    uint8_t* got = malloc(n);
    float* deq_want = malloc(n * sizeof *deq_want);
    float* deq_got = malloc(n * sizeof *deq_got);
    float scale[8];
    int32_t zp[8];
    for (size_t c = 0; c < channels; ++c) {
        scale[c] = onnxq_test_rand_float(0.001f, 2.0f);
        zp[c] = qtype == ONNXQ_U8 ? u8_zps[onnxq_test_rand_int(0, 3)] : s8_zps[onnxq_test_rand_int(0, 3)];
    }
    fill_inputs(x, n, scale[0]);
    onnxq_quant_params p = {outer, channels, inner, scale, channels, zp, channels, qtype};
    onnxq_isa_set("scalar");
    ONNXQ_EXPECT(onnxq_quantize(&p, x, n, want, n) == ONNXQ_OK, "scalar quantize: %s", onnxq_last_error());
    ONNXQ_EXPECT(onnxq_dequantize(&p, want, n, deq_want, n) == ONNXQ_OK, "scalar dequantize: %s",
                 onnxq_last_error());
    ONNXQ_TEST_FOREACH_ISA(isa) {
        memset(got, 0xa5, n);
        ONNXQ_EXPECT(onnxq_quantize(&p, x, n, got, n) == ONNXQ_OK, "quantize: %s", onnxq_last_error());
        ONNXQ_EXPECT(memcmp(got, want, n) == 0, "quantize qtype=%d shape=%zux%zux%zu differs", qtype,
                     outer, channels, inner);
        ONNXQ_EXPECT(onnxq_dequantize(&p, want, n, deq_got, n) == ONNXQ_OK, "dequantize: %s",
                     onnxq_last_error());
        ONNXQ_EXPECT(memcmp(deq_got, deq_want, n * sizeof(float)) == 0,
                     "dequantize qtype=%d shape=%zux%zux%zu differs", qtype, outer, channels, inner);
    }
    free(x), free(want), free(got), free(deq_want), free(deq_got);
}

static void check_saturation_and_rounding(void) {
    /* u8, zp 128, scale 0.5: 1.25/0.5 = 2.5 -> 2 (half to even) + 128; 1.75/0.5 = 3.5 -> 4. */
    const float x[6] = {1.25f, 1.75f, -1000.0f, 1000.0f, NAN, -0.75f};
    const uint8_t want[6] = {130, 132, 0, 255, 0, 126};
    const float scale = 0.5f;
    const int32_t zp = 128;
    onnxq_quant_params p = {1, 1, 6, &scale, 1, &zp, 1, ONNXQ_U8};
    ONNXQ_TEST_FOREACH_ISA(isa) {
        uint8_t got[6];
        ONNXQ_EXPECT(onnxq_quantize(&p, x, 6, got, 6) == ONNXQ_OK, "quantize: %s", onnxq_last_error());
        ONNXQ_EXPECT(memcmp(got, want, 6) == 0, "rounding/saturation: got %d %d %d %d %d %d",
                     got[0], got[1], got[2], got[3], got[4], got[5]);
    }
}

static void check_bad_input(void) {
    float x[4] = {0};
    uint8_t y[4] = {1, 2, 3, 4};
    float scale = 1.0f, zero_scale = 0.0f, nan_scale = NAN;
    int32_t zp = 0, bad_zp = 256;
    onnxq_quant_params ok = {1, 1, 4, &scale, 1, &zp, 1, ONNXQ_U8};
    onnxq_quant_params p = ok;
    p.inner = 0;
    ONNXQ_EXPECT(onnxq_quantize(&p, x, 4, y, 4) == ONNXQ_E_SHAPE, "zero-size accepted");
    p = ok, p.scale = &zero_scale;
    ONNXQ_EXPECT(onnxq_quantize(&p, x, 4, y, 4) == ONNXQ_E_ARG, "zero scale accepted");
    p = ok, p.scale = &nan_scale;
    ONNXQ_EXPECT(onnxq_quantize(&p, x, 4, y, 4) == ONNXQ_E_ARG, "NaN scale accepted");
    p = ok, p.zp = &bad_zp;
    ONNXQ_EXPECT(onnxq_quantize(&p, x, 4, y, 4) == ONNXQ_E_ARG, "zero point 256 accepted");
    ONNXQ_EXPECT(strstr(onnxq_last_error(), "zero_point") != NULL, "message '%s' names the zero point",
                 onnxq_last_error());
    p = ok, p.qtype = ONNXQ_F32;
    ONNXQ_EXPECT(onnxq_quantize(&p, x, 4, y, 4) == ONNXQ_E_ARG, "f32 qtype accepted");
    p = ok, p.outer = SIZE_MAX / 2, p.inner = 4;
    ONNXQ_EXPECT(onnxq_quantize(&p, x, 4, y, 4) == ONNXQ_E_SHAPE, "overflowing size accepted");
    ONNXQ_EXPECT(onnxq_quantize(NULL, x, 4, y, 4) == ONNXQ_E_ARG, "NULL params accepted");
    ONNXQ_EXPECT(onnxq_quantize(&ok, NULL, 4, y, 4) == ONNXQ_E_ARG, "NULL x accepted");
    ONNXQ_EXPECT(onnxq_quantize(&ok, x, 3, y, 4) == ONNXQ_E_SHAPE, "short x accepted");
    ONNXQ_EXPECT(strstr(onnxq_last_error(), "x has 3 values, expected 4") != NULL, "message '%s'",
                 onnxq_last_error());
    ONNXQ_EXPECT(onnxq_quantize(&ok, x, 4, y, 5) == ONNXQ_E_SHAPE, "long y accepted");
    p = ok, p.scale_len = 2;
    ONNXQ_EXPECT(onnxq_quantize(&p, x, 4, y, 4) == ONNXQ_E_SHAPE, "scale_len 2 accepted");
    p = ok, p.zp_len = 0;
    ONNXQ_EXPECT(onnxq_quantize(&p, x, 4, y, 4) == ONNXQ_E_SHAPE, "zp_len 0 accepted");
    p = ok, p.channels = 2, p.inner = 2;
    ONNXQ_EXPECT(onnxq_quantize(&p, x, 4, y, 4) == ONNXQ_E_SHAPE, "2 channels with 1 scale accepted");
    ONNXQ_EXPECT(onnxq_dequantize(&ok, y, 3, x, 4) == ONNXQ_E_SHAPE, "short dequantize input");
    ONNXQ_EXPECT(y[0] == 1 && y[3] == 4, "output touched on error");
}

void onnxq_test_quant(void) {
    static const size_t sizes[] = {1, 3, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 200, 1000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i) {
        check_quantize(ONNXQ_U8, 1, 1, sizes[i]);
        check_quantize(ONNXQ_S8, 1, 1, sizes[i]);
    }
    for (int r = 0; r < 30; ++r) {
        const size_t outer = (size_t)onnxq_test_rand_int(1, 4);
        const size_t channels = (size_t)onnxq_test_rand_int(1, 8);
        const size_t inner = (size_t)onnxq_test_rand_int(1, 150);
        check_quantize(r & 1 ? ONNXQ_S8 : ONNXQ_U8, outer, channels, inner);
    }
    check_saturation_and_rounding();
    check_bad_input();
}
