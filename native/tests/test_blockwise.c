/* C tests of the blockwise family (4-bit block-wise weights x int8 per-row activations): every ISA
 * agrees with the scalar kernel bit for bit, a hand-checked product, bad arguments fail cleanly. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onnxq/blockwise.h"
#include "test_util.h"

typedef struct weights {
    size_t k, n, block, nb, size;
    uint8_t* b;
    float* scales;
    uint8_t* zp;
    void* packed;
} weights;

/* random codes / scales / zero points (when with_zp) in MatMulNBits' layout, packed */
static int make_weights(weights* w, size_t k, size_t n, size_t block, int with_zp) {
    w->k = k, w->n = n, w->block = block, w->nb = (k + block - 1) / block;
    const size_t row = w->nb * block / 2, zrow = (w->nb + 1) / 2;
    w->b = malloc(n * row);
    w->scales = malloc(n * w->nb * sizeof(float));
    w->zp = with_zp ? malloc(n * zrow) : NULL;
    onnxq_test_fill_u8(w->b, n * row, 0, 255);
    for (size_t i = 0; i < n * w->nb; ++i) w->scales[i] = onnxq_test_rand_float(0.001f, 0.1f);
    if (w->zp != NULL) onnxq_test_fill_u8(w->zp, n * zrow, 0, 255);
    if (onnxq_qb4w_packed_size(k, n, block, with_zp, &w->size) != ONNXQ_OK) return 0;
    w->packed = aligned_alloc(64, (w->size + 63) / 64 * 64);
    return onnxq_qb4w_pack(k, n, block, w->b, n * row, w->scales, n * w->nb, w->zp,
                           w->zp != NULL ? n * zrow : 0, w->packed, w->size) == ONNXQ_OK;
}

static void free_weights(weights* w) {
    free(w->b);
    free(w->scales);
    free(w->zp);
    free(w->packed);
}

static void test_isas_agree(void) {
    static const size_t shapes[][4] = {{1, 32, 16, 32}, {3, 100, 37, 32}, {2, 256, 40, 64},
                                       {5, 1000, 70, 128}, {1, 33, 1, 32}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; ++si) {
        for (int with_zp = 0; with_zp < 2; ++with_zp) {
            const size_t m = shapes[si][0], k = shapes[si][1], n = shapes[si][2];
            weights w;
            ONNXQ_EXPECT(make_weights(&w, k, n, shapes[si][3], with_zp), "pack: %s", onnxq_last_error());
            float* a = malloc(m * k * sizeof(float));
            float* bias = malloc(n * sizeof(float));
            float* want = malloc(m * n * sizeof(float));
            float* got = malloc(m * n * sizeof(float));
            onnxq_test_fill_f32(a, m * k, -4.0f, 4.0f);
            onnxq_test_fill_f32(bias, n, -1.0f, 1.0f);
            onnxq_qb4w_params p = {.k = k, .n = n, .m = m, .a = a, .a_len = m * k, .lda = k,
                                   .bias = bias, .bias_len = n, .y = want, .y_len = m * n, .ldy = n,
                                   .threads = 1};
            onnxq_isa_set("scalar");
            ONNXQ_EXPECT(onnxq_qb4w_matmul(w.packed, w.size, &p) == ONNXQ_OK, "%s", onnxq_last_error());
            ONNXQ_TEST_FOREACH_ISA(isa) {
                for (size_t threads = 1; threads <= 2; ++threads) {
                    memset(got, 0, m * n * sizeof(float));
                    p.y = got, p.threads = threads;
                    ONNXQ_EXPECT(onnxq_qb4w_matmul(w.packed, w.size, &p) == ONNXQ_OK, "%s",
                                 onnxq_last_error());
                    ONNXQ_EXPECT(memcmp(got, want, m * n * sizeof(float)) == 0,
                                 "blockwise %zux%zux%zu zp=%d differs from scalar under %s", m, k, n,
                                 with_zp, onnxq_isa_name(isa));
                }
            }
            onnxq_isa_set(NULL);
            free(a), free(bias), free(want), free(got);
            free_weights(&w);
        }
    }
}

/* one row [1, 2, ..., 32] x codes all 9 (value 1 with zero point 8) in one block of scale 0.5:
 * s_a = 32 / 127, q_i = round(i * 127 / 32), acc = sum q_i, y = acc * (s_a * 0.5) */
static void test_values(void) {
    uint8_t b[16];
    memset(b, 0x99, sizeof b);
    const float scale = 0.5f;
    size_t size = 0;
    ONNXQ_EXPECT(onnxq_qb4w_packed_size(32, 1, 32, 0, &size) == ONNXQ_OK, "%s", onnxq_last_error());
    void* packed = aligned_alloc(64, (size + 63) / 64 * 64);
    ONNXQ_EXPECT(onnxq_qb4w_pack(32, 1, 32, b, 16, &scale, 1, NULL, 0, packed, size) == ONNXQ_OK, "%s",
                 onnxq_last_error());
    float a[32], y = 0.0f;
    int32_t acc = 0;
    const float s_a = 32.0f / 127.0f;
    for (int i = 0; i < 32; ++i) {
        a[i] = (float)(i + 1);
        acc += (int32_t)nearbyintf(a[i] / s_a);
    }
    onnxq_qb4w_params p = {.k = 32, .n = 1, .m = 1, .a = a, .a_len = 32, .lda = 32, .y = &y,
                           .y_len = 1, .ldy = 1};
    ONNXQ_TEST_FOREACH_ISA(isa) {
        y = 0.0f;
        ONNXQ_EXPECT(onnxq_qb4w_matmul(packed, size, &p) == ONNXQ_OK, "%s", onnxq_last_error());
        ONNXQ_EXPECT(y == (float)acc * (s_a * 0.5f), "y = %g, expected %g under %s", (double)y,
                     (double)((float)acc * (s_a * 0.5f)), onnxq_isa_name(isa));
    }
    onnxq_isa_set(NULL);
    free(packed);
}

static void test_bad_arguments(void) {
    weights w;
    ONNXQ_EXPECT(make_weights(&w, 64, 20, 32, 1), "pack: %s", onnxq_last_error());
    float a[2 * 64] = {0}, y[2 * 20];
    size_t size = 0;
    ONNXQ_EXPECT(onnxq_qb4w_packed_size(64, 20, 48, 0, &size) == ONNXQ_E_ARG, "block 48 refused");
    ONNXQ_EXPECT(onnxq_qb4w_packed_size(64, 20, 16, 0, &size) == ONNXQ_E_ARG, "block 16 refused");
    ONNXQ_EXPECT(onnxq_qb4w_packed_size(0, 20, 32, 0, &size) == ONNXQ_E_SHAPE, "k 0 refused");
    ONNXQ_EXPECT(onnxq_qb4w_pack(64, 20, 32, w.b, 20 * 32 - 1, w.scales, 40, NULL, 0, w.packed, w.size) ==
                     ONNXQ_E_SHAPE && strstr(onnxq_last_error(), "b has") != NULL,
                 "short b: %s", onnxq_last_error());
    ONNXQ_EXPECT(onnxq_qb4w_pack(64, 20, 32, w.b, 20 * 32, w.scales, 40, w.zp, 19, w.packed, w.size) ==
                     ONNXQ_E_SHAPE, "short zero points: %s", onnxq_last_error());
    ONNXQ_EXPECT(onnxq_qb4w_pack(64, 20, 32, w.b, 20 * 32, w.scales, 40, NULL, 0, w.packed, 100) ==
                     ONNXQ_E_SHAPE, "short packed: %s", onnxq_last_error());
    onnxq_qb4w_params p = {.k = 64, .n = 20, .m = 2, .a = a, .a_len = 128, .lda = 64, .y = y,
                           .y_len = 40, .ldy = 20, .threads = 1};
    ONNXQ_EXPECT(onnxq_qb4w_matmul(w.packed, w.size, &p) == ONNXQ_OK, "%s", onnxq_last_error());
    ONNXQ_EXPECT(onnxq_qb4w_matmul(w.packed, w.size - 1, &p) == ONNXQ_E_ARG, "truncated buffer");
    ONNXQ_EXPECT(onnxq_qb4w_matmul(w.packed, 64, &p) == ONNXQ_E_ARG, "shorter than the header");
    p.k = 65;
    ONNXQ_EXPECT(onnxq_qb4w_matmul(w.packed, w.size, &p) == ONNXQ_E_SHAPE, "k disagrees");
    p.k = 64, p.a_len = 127;
    ONNXQ_EXPECT(onnxq_qb4w_matmul(w.packed, w.size, &p) == ONNXQ_E_SHAPE, "short a: %s", onnxq_last_error());
    p.a_len = 128, p.y_len = 39;
    ONNXQ_EXPECT(onnxq_qb4w_matmul(w.packed, w.size, &p) == ONNXQ_E_SHAPE, "short y");
    p.y_len = 40, p.bias = a, p.bias_len = 19;
    ONNXQ_EXPECT(onnxq_qb4w_matmul(w.packed, w.size, &p) == ONNXQ_E_SHAPE, "short bias");
    p.bias = NULL, p.bias_len = 0, p.threads = 65;
    ONNXQ_EXPECT(onnxq_qb4w_matmul(w.packed, w.size, &p) == ONNXQ_E_ARG, "65 threads");
    p.threads = 1;
    a[70] = NAN;
    y[0] = 7.0f;
    ONNXQ_EXPECT(onnxq_qb4w_matmul(w.packed, w.size, &p) == ONNXQ_E_ARG &&
                     strstr(onnxq_last_error(), "row 1") != NULL && y[0] == 7.0f,
                 "NaN in row 1: %s", onnxq_last_error());
    a[70] = INFINITY;
    ONNXQ_EXPECT(onnxq_qb4w_matmul(w.packed, w.size, &p) == ONNXQ_E_ARG, "inf");
    a[70] = 0.0f;
    /* run_cols: the rows' shape and the column range */
    int8_t q[2 * 64];
    float s[2];
    int32_t bs[4];
    onnxq_qd8_rows r = {2, 64, 32, q, 128, s, 2, bs, 4};
    ONNXQ_EXPECT(onnxq_qd8_quantize_rows(a, 128, 64, &r) == ONNXQ_OK, "%s", onnxq_last_error());
    ONNXQ_EXPECT(onnxq_qb4w_run_cols(w.packed, w.size, &r, NULL, 0, y, 40, 20, 16, 4) == ONNXQ_OK, "%s",
                 onnxq_last_error());
    ONNXQ_EXPECT(onnxq_qb4w_run_cols(w.packed, w.size, &r, NULL, 0, y, 40, 20, 8, 4) == ONNXQ_E_SHAPE,
                 "col0 not a multiple of 16");
    ONNXQ_EXPECT(onnxq_qb4w_run_cols(w.packed, w.size, &r, NULL, 0, y, 40, 20, 16, 5) == ONNXQ_E_SHAPE,
                 "columns past n");
    r.bsum_len = 3;
    ONNXQ_EXPECT(onnxq_qb4w_run_cols(w.packed, w.size, &r, NULL, 0, y, 40, 20, 0, 4) == ONNXQ_E_SHAPE,
                 "short bsum");
    r.bsum_len = 4, r.block = 64;
    ONNXQ_EXPECT(onnxq_qb4w_run_cols(w.packed, w.size, &r, NULL, 0, y, 40, 20, 0, 4) == ONNXQ_E_SHAPE,
                 "rows of another block: %s", onnxq_last_error());
    /* a corrupted header */
    ((uint8_t*)w.packed)[8] ^= 1;
    ONNXQ_EXPECT(onnxq_qb4w_matmul(w.packed, w.size, &p) == ONNXQ_E_ARG, "corrupted header");
    free_weights(&w);
}

void onnxq_test_blockwise(void) {
    onnxq_test_seed(12);
    test_values();
    test_isas_agree();
    test_bad_arguments();
}
