/* C tests of the quantized add: every ISA present agrees with the scalar kernel (bit-exact) on all
 * broadcast forms and odd lengths, hand-checked values, and bad arguments fail cleanly (status +
 * message, output untouched). */
#include <stdlib.h>
#include <string.h>

#include "onnxq/eltwise.h"
#include "test_util.h"

static size_t form_len(int form, size_t outer, size_t inner) {
    switch (form) {
        case ONNXQ_BCAST_FULL: return outer * inner;
        case ONNXQ_BCAST_INNER: return inner;
        case ONNXQ_BCAST_ROW: return outer;
        default: return 1;
    }
}

static void test_isas_agree(void) {
    static const size_t inners[] = {1, 7, 31, 32, 33, 64, 100};
    uint8_t a[4 * 100], b[4 * 100], want[4 * 100], got[4 * 100];
    for (int qtype = ONNXQ_U8; qtype <= ONNXQ_S8; ++qtype)
        for (size_t ii = 0; ii < sizeof inners / sizeof inners[0]; ++ii)
            for (int fa = 0; fa < 4; ++fa)
                for (int fb = 0; fb < 4; ++fb) {
                    const size_t outer = 3, inner = inners[ii];
                    onnxq_qadd_params p = {outer, inner, qtype, fa, fb, 0.031f, 0.017f, 0.045f,
                                           0, 0, 0, 0, 255};
                    if (qtype == ONNXQ_S8) {
                        p.a_zp = -128; p.b_zp = 127; p.y_zp = 0; p.qmin = -128; p.qmax = 127;
                    } else {
                        p.a_zp = 255; p.b_zp = 0; p.y_zp = 128;
                    }
                    const size_t la = form_len(fa, outer, inner), lb = form_len(fb, outer, inner);
                    onnxq_test_fill_u8(a, la, 0, 255);
                    onnxq_test_fill_u8(b, lb, 0, 255);
                    onnxq_isa_set("scalar");
                    ONNXQ_EXPECT(onnxq_qadd(&p, a, la, b, lb, want, outer * inner) == ONNXQ_OK,
                                 "%s", onnxq_last_error());
                    ONNXQ_TEST_FOREACH_ISA(isa) {
                        memset(got, 0xAA, sizeof got);
                        ONNXQ_EXPECT(onnxq_qadd(&p, a, la, b, lb, got, outer * inner) == ONNXQ_OK,
                                     "%s", onnxq_last_error());
                        ONNXQ_EXPECT(memcmp(got, want, outer * inner) == 0,
                                     "isa %s differs from scalar (qtype %d, inner %zu, "
                                     "forms %d/%d)", onnxq_isa_name(isa), qtype, inner, fa, fb);
                        ONNXQ_EXPECT(got[outer * inner] == 0xAA, "isa %s wrote past the end",
                                     onnxq_isa_name(isa));
                    }
                }
    onnxq_isa_set(NULL);
}

static void test_values(void) {
    /* scales 1: y = a - a_zp + b - b_zp + y_zp, saturated; ReLU clamps at y_zp */
    const uint8_t a[4] = {10, 200, 255, 0}, b[4] = {5, 100, 255, 0};
    uint8_t y[4];
    onnxq_qadd_params p = {1, 4, ONNXQ_U8, ONNXQ_BCAST_FULL, ONNXQ_BCAST_FULL, 1.0f, 1.0f, 1.0f,
                           0, 0, 20, 0, 255};
    ONNXQ_EXPECT(onnxq_qadd(&p, a, 4, b, 4, y, 4) == ONNXQ_OK, "%s", onnxq_last_error());
    ONNXQ_EXPECT(y[0] == 35 && y[1] == 255 && y[2] == 255 && y[3] == 20, "got %d %d %d %d", y[0],
                 y[1], y[2], y[3]);
    p.a_zp = 100;
    p.qmin = 20;
    ONNXQ_EXPECT(onnxq_qadd(&p, a, 4, b, 4, y, 4) == ONNXQ_OK, "%s", onnxq_last_error());
    ONNXQ_EXPECT(y[0] == 20 && y[1] == 220 && y[3] == 20, "relu got %d %d %d", y[0], y[1], y[3]);
    /* half to even: 0.5 * (1 + 2) = 1.5 -> 2, 0.5 * (1 + 4) = 2.5 -> 2 */
    const uint8_t c[2] = {1, 1}, d[2] = {2, 4};
    onnxq_qadd_params h = {1, 2, ONNXQ_U8, ONNXQ_BCAST_FULL, ONNXQ_BCAST_FULL, 0.5f, 0.5f, 1.0f,
                           0, 0, 0, 0, 255};
    ONNXQ_EXPECT(onnxq_qadd(&h, c, 2, d, 2, y, 2) == ONNXQ_OK, "%s", onnxq_last_error());
    ONNXQ_EXPECT(y[0] == 2 && y[1] == 2, "half-even got %d %d", y[0], y[1]);
}

static void test_bad_arguments(void) {
    uint8_t a[8] = {0}, y[8];
    memset(y, 7, sizeof y);
    onnxq_qadd_params p = {2, 4, ONNXQ_U8, ONNXQ_BCAST_FULL, ONNXQ_BCAST_FULL, 1.0f, 1.0f, 1.0f,
                           0, 0, 0, 0, 255};
    ONNXQ_EXPECT(onnxq_qadd(NULL, a, 8, a, 8, y, 8) == ONNXQ_E_ARG, "NULL params");
    ONNXQ_EXPECT(onnxq_qadd(&p, NULL, 8, a, 8, y, 8) == ONNXQ_E_ARG, "NULL a");
    ONNXQ_EXPECT(onnxq_qadd(&p, a, 7, a, 8, y, 8) == ONNXQ_E_SHAPE, "short a");
    ONNXQ_EXPECT(strstr(onnxq_last_error(), "a has 7 elements") != NULL, "message: %s",
                 onnxq_last_error());
    ONNXQ_EXPECT(onnxq_qadd(&p, a, 8, a, 8, y, 9) == ONNXQ_E_SHAPE, "long y");
    p.outer = 0;
    ONNXQ_EXPECT(onnxq_qadd(&p, a, 0, a, 0, y, 0) == ONNXQ_E_SHAPE, "zero-size");
    p.outer = (size_t)1 << 40;
    p.inner = (size_t)1 << 40;
    ONNXQ_EXPECT(onnxq_qadd(&p, a, 8, a, 8, y, 8) == ONNXQ_E_SHAPE, "overflow");
    p.outer = 2;
    p.inner = 4;
    p.b_zp = 256;
    ONNXQ_EXPECT(onnxq_qadd(&p, a, 8, a, 8, y, 8) == ONNXQ_E_ARG, "zp out of range");
    p.b_zp = 0;
    p.y_scale = 0.0f;
    ONNXQ_EXPECT(onnxq_qadd(&p, a, 8, a, 8, y, 8) == ONNXQ_E_ARG, "zero scale");
    p.y_scale = 1.0f;
    p.qmin = 10;
    p.qmax = 5;
    ONNXQ_EXPECT(onnxq_qadd(&p, a, 8, a, 8, y, 8) == ONNXQ_E_ARG, "clamp inverted");
    p.qmin = 0;
    p.qmax = 255;
    p.qtype = 7;
    ONNXQ_EXPECT(onnxq_qadd(&p, a, 8, a, 8, y, 8) == ONNXQ_E_ARG, "bad qtype");
    for (int i = 0; i < 8; ++i) ONNXQ_EXPECT(y[i] == 7, "output touched on error");
}

void onnxq_test_eltwise(void) {
    test_isas_agree();
    test_values();
    test_bad_arguments();
}
