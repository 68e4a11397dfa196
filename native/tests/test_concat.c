/* C tests of the quantized concat: every ISA present agrees with the scalar (lookup-table) kernel,
 * copies of inputs at the output parameters, hand-checked values, bad arguments fail cleanly. */
#include <stdlib.h>
#include <string.h>

#include "onnxq/concat.h"
#include "test_util.h"

static void test_isas_agree(void) {
    static const size_t inners[] = {1, 15, 16, 33, 100};
    static const int32_t zps[2][3] = {{0, 128, 255}, {-128, 0, 127}};
    uint8_t a[3 * 2 * 100], b[3 * 5 * 100], c[3 * 1 * 100], want[3 * 8 * 100 + 1],
        got[3 * 8 * 100 + 1];
    for (int qtype = ONNXQ_U8; qtype <= ONNXQ_S8; ++qtype)
        for (size_t ii = 0; ii < sizeof inners / sizeof inners[0]; ++ii) {
            const size_t outer = 3, inner = inners[ii];
            onnxq_test_fill_u8(a, sizeof a, 0, 255);
            onnxq_test_fill_u8(b, sizeof b, 0, 255);
            onnxq_test_fill_u8(c, sizeof c, 0, 255);
            onnxq_qconcat_input in[3] = {
                {a, outer * 2 * inner, 2, 0.05f, zps[qtype][0]},
                {b, outer * 5 * inner, 5, 0.02f, zps[qtype][1]}, /* copied */
                {c, outer * 1 * inner, 1, 0.3f, zps[qtype][2]},
            };
            onnxq_qconcat_params p = {outer, inner, qtype, 3, in, 0.02f, zps[qtype][1]};
            const size_t y_len = outer * 8 * inner;
            onnxq_isa_set("scalar");
            ONNXQ_EXPECT(onnxq_qconcat(&p, want, y_len) == ONNXQ_OK, "%s", onnxq_last_error());
            ONNXQ_EXPECT(memcmp(want + 2 * inner, b, 5 * inner) == 0,
                         "input at output params not copied");
            ONNXQ_TEST_FOREACH_ISA(isa) {
                memset(got, 0xAA, sizeof got);
                ONNXQ_EXPECT(onnxq_qconcat(&p, got, y_len) == ONNXQ_OK, "%s", onnxq_last_error());
                ONNXQ_EXPECT(memcmp(got, want, y_len) == 0, "isa %s differs (qtype %d inner %zu)",
                             onnxq_isa_name(isa), qtype, inner);
                ONNXQ_EXPECT(got[y_len] == 0xAA, "isa %s wrote past the end", onnxq_isa_name(isa));
            }
        }
    onnxq_isa_set(NULL);
}

static void test_values(void) {
    /* x_scale 1, y_scale 2: (x - 10) / 2 rounded half to even, + 100, saturated */
    const uint8_t a[4] = {10, 11, 13, 255}, b[1] = {42};
    uint8_t y[5];
    onnxq_qconcat_input in[2] = {{a, 4, 4, 1.0f, 10}, {b, 1, 1, 2.0f, 100}};
    onnxq_qconcat_params p = {1, 1, ONNXQ_U8, 2, in, 2.0f, 100};
    ONNXQ_EXPECT(onnxq_qconcat(&p, y, 5) == ONNXQ_OK, "%s", onnxq_last_error());
    ONNXQ_EXPECT(y[0] == 100 && y[1] == 100 && y[2] == 102 && y[3] == 222 && y[4] == 42,
                 "got %d %d %d %d %d", y[0], y[1], y[2], y[3], y[4]);
}

static void test_bad_arguments(void) {
    uint8_t a[6] = {0}, y[12];
    memset(y, 7, sizeof y);
    onnxq_qconcat_input in[2] = {{a, 6, 3, 1.0f, 0}, {a, 6, 3, 1.0f, 0}};
    onnxq_qconcat_params p = {2, 1, ONNXQ_U8, 2, in, 1.0f, 0};
    ONNXQ_EXPECT(onnxq_qconcat(&p, y, 11) == ONNXQ_E_SHAPE, "y_len");
    in[1].len = 5;
    ONNXQ_EXPECT(onnxq_qconcat(&p, y, 12) == ONNXQ_E_SHAPE, "input len");
    ONNXQ_EXPECT(strstr(onnxq_last_error(), "input 1 has 5 elements") != NULL, "msg %s",
                 onnxq_last_error());
    in[1].len = 6;
    in[1].axis = 0;
    ONNXQ_EXPECT(onnxq_qconcat(&p, y, 12) == ONNXQ_E_SHAPE, "zero extent");
    in[1].axis = 3;
    in[1].zp = 300;
    ONNXQ_EXPECT(onnxq_qconcat(&p, y, 12) == ONNXQ_E_ARG, "zp");
    in[1].zp = 0;
    in[1].data = NULL;
    ONNXQ_EXPECT(onnxq_qconcat(&p, y, 12) == ONNXQ_E_ARG, "NULL input");
    in[1].data = a;
    p.n_inputs = 0;
    ONNXQ_EXPECT(onnxq_qconcat(&p, y, 12) == ONNXQ_E_ARG, "no inputs");
    p.n_inputs = 2;
    p.outer = (size_t)1 << 62;
    ONNXQ_EXPECT(onnxq_qconcat(&p, y, 12) == ONNXQ_E_SHAPE, "overflow");
    for (int i = 0; i < 12; ++i) ONNXQ_EXPECT(y[i] == 7, "output touched on error");
}

void onnxq_test_concat(void) {
    test_isas_agree();
    test_values();
    test_bad_arguments();
}
