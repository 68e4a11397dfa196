/* C tests of the dynamic quantization and the dynamic-quantization matmul: ISAs agree bit for bit,
 * hand-checked parameters, bad arguments fail cleanly. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onnxq/dynamic.h"
#include "test_util.h"

/* a multiple of 0.001 in [-10, 10] */
static float rndf(void) { return (float)onnxq_test_rand_int(-10000, 10000) / 1000.0f; }

static void test_quantize_values(void) {
    const float x[5] = {-1.0f, 254.0f, 2.5f, 3.5f, 0.0f};
    uint8_t q[5];
    float s;
    int32_t z;
    ONNXQ_EXPECT(onnxq_dynamic_quantize(x, 5, 1, 5, 5, ONNXQ_DQ_PER_TENSOR, q, 5, &s, &z, 1) ==
                     ONNXQ_OK,
                 "%s", onnxq_last_error());
    ONNXQ_EXPECT(s == 1.0f && z == 1, "scale %g zp %d", (double)s, (int)z);
    ONNXQ_EXPECT(q[0] == 0 && q[1] == 255 && q[2] == 3 && q[3] == 5 && q[4] == 1,
                 "q %d %d %d %d %d", q[0], q[1], q[2], q[3], q[4]);
    const float zeros[3] = {0};
    ONNXQ_EXPECT(onnxq_dynamic_quantize(zeros, 3, 1, 3, 3, ONNXQ_DQ_PER_ROW, q, 3, &s, &z, 1) ==
                     ONNXQ_OK,
                 "zeros");
    ONNXQ_EXPECT(s == 1.0f && z == 0, "zeros: scale %g zp %d", (double)s, (int)z);
}

static void test_isas_agree(void) {
    static const size_t shapes[][3] = {{1, 1, 1}, {3, 17, 5}, {7, 64, 33}, {5, 129, 48}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; ++si) {
        const size_t m = shapes[si][0], k = shapes[si][1], n = shapes[si][2];
        float* a = malloc(m * k * sizeof(float));
        int8_t* w = malloc(n * k);
        float* ws = malloc(n * sizeof(float));
        float* bias = malloc(n * sizeof(float));
        float* want = malloc(m * n * sizeof(float));
        float* got = malloc(m * n * sizeof(float));
        for (size_t i = 0; i < m * k; ++i) a[i] = rndf();
        onnxq_test_fill_s8(w, n * k, -128, 127);
        for (size_t i = 0; i < n; ++i) ws[i] = 0.001f + (float)onnxq_test_rand_int(0, 99) / 1000.0f;
        for (size_t i = 0; i < n; ++i) bias[i] = rndf();
        const size_t size = onnxq_gemm_u8s8_packed_size(k, n);
        void* packed = aligned_alloc(64, (size + 63) / 64 * 64);
        /* w is [n, k]: element (kk, nn) at w[nn * k + kk] */
        ONNXQ_EXPECT(onnxq_gemm_u8s8_pack(w, n * k, k, n, 1, (ptrdiff_t)k, 0, packed, size) == ONNXQ_OK,
                     "%s", onnxq_last_error());
        for (int mode = 0; mode < 2; ++mode) {
            onnxq_dqmm_params p = {.k = k, .n = n, .m = m, .a = a, .a_len = m * k, .lda = k,
                                   .mode = mode, .w_scale = ws, .w_scale_len = n, .bias = bias,
                                   .bias_len = n, .y = want, .y_len = m * n, .ldy = n};
            onnxq_isa_set("scalar");
            ONNXQ_EXPECT(onnxq_dqmm(packed, size, &p) == ONNXQ_OK, "%s", onnxq_last_error());
            ONNXQ_TEST_FOREACH_ISA(isa) {
                /* per-ISA packing is shared (one layout); run with the same buffer */
                p.y = got;
                ONNXQ_EXPECT(onnxq_dqmm(packed, size, &p) == ONNXQ_OK, "%s", onnxq_last_error());
                ONNXQ_EXPECT(memcmp(got, want, m * n * sizeof(float)) == 0,
                             "isa %s differs (%zux%zux%zu)", onnxq_isa_name(isa), m, k, n);
                p.y = want;
            }
        }
        onnxq_isa_set(NULL);
        free(a), free(w), free(ws), free(bias), free(want), free(got), free(packed);
    }
}

static void test_bad_arguments(void) {
    int8_t w[6] = {1, 2, 3, 4, 5, 6};
    const size_t size = onnxq_gemm_u8s8_packed_size(3, 2);
    void* packed = aligned_alloc(64, (size + 63) / 64 * 64);
    ONNXQ_EXPECT(onnxq_gemm_u8s8_pack(w, 6, 3, 2, 1, 3, 0, packed, size) == ONNXQ_OK, "%s",
                 onnxq_last_error());
    float a[6] = {1, 2, 3, 4, 5, 6}, ws[2] = {0.1f, 0.2f}, y[4] = {7, 7, 7, 7}, bias[2] = {0};
    const onnxq_dqmm_params ok = {.k = 3, .n = 2, .m = 2, .a = a, .a_len = 6, .lda = 3,
                                  .mode = ONNXQ_DQ_PER_TENSOR, .w_scale = ws, .w_scale_len = 2,
                                  .y = y, .y_len = 4, .ldy = 2};
    onnxq_dqmm_params p = ok;
    p.lda = 2;
    ONNXQ_EXPECT(onnxq_dqmm(packed, size, &p) == ONNXQ_E_SHAPE, "lda < k");
    p.lda = 3, p.ldy = 1;
    ONNXQ_EXPECT(onnxq_dqmm(packed, size, &p) == ONNXQ_E_SHAPE, "ldy < n");
    p.ldy = 2, p.w_scale_len = 3;
    ONNXQ_EXPECT(onnxq_dqmm(packed, size, &p) == ONNXQ_E_SHAPE, "w_scale_len");
    p.w_scale_len = 2, p.mode = 5;
    ONNXQ_EXPECT(onnxq_dqmm(packed, size, &p) == ONNXQ_E_ARG, "mode");
    p.mode = 0, p.m = 0;
    ONNXQ_EXPECT(onnxq_dqmm(packed, size, &p) == ONNXQ_E_SHAPE, "m = 0");
    p.m = 2;
    for (int mode = 0; mode < 2; ++mode) {
        static const float bad[] = {INFINITY, -INFINITY, NAN};
        for (int b = 0; b < 3; ++b) {
            p.mode = mode;
            a[4] = bad[b];
            ONNXQ_TEST_FOREACH_ISA(isa) {
                ONNXQ_EXPECT(onnxq_dqmm(packed, size, &p) == ONNXQ_E_ARG, "%g in A (mode %d)",
                             (double)bad[b], mode);
                ONNXQ_EXPECT(strstr(onnxq_last_error(), "expected finite values") != NULL, "msg %s",
                             onnxq_last_error());
            }
        }
    }
    onnxq_isa_set(NULL);
    p.mode = 0;
    a[4] = 5;
    p = ok, p.a_len = 5;
    ONNXQ_EXPECT(onnxq_dqmm(packed, size, &p) == ONNXQ_E_SHAPE, "short a");
    p = ok, p.y_len = 3;
    ONNXQ_EXPECT(onnxq_dqmm(packed, size, &p) == ONNXQ_E_SHAPE, "short y");
    p = ok, p.bias = bias, p.bias_len = 1;
    ONNXQ_EXPECT(onnxq_dqmm(packed, size, &p) == ONNXQ_E_SHAPE, "short bias");
    p = ok, p.n = 1u << 24;
    ONNXQ_EXPECT(onnxq_dqmm(packed, size, &p) == ONNXQ_E_SHAPE, "caller n disagrees");
    p = ok;
    ws[1] = 0.0f;
    ONNXQ_EXPECT(onnxq_dqmm(packed, size, &p) == ONNXQ_E_ARG, "zero w_scale");
    ws[1] = 0.2f;
    ONNXQ_EXPECT(onnxq_dqmm(packed, size - 1, &p) != ONNXQ_OK, "short packed buffer");
    for (int i = 0; i < 4; ++i) ONNXQ_EXPECT(y[i] == 7.0f, "output touched on error");
    ONNXQ_EXPECT(onnxq_dqmm(packed, size, &p) == ONNXQ_OK, "%s", onnxq_last_error());
    uint8_t q[6];
    float s;
    int32_t z;
    ONNXQ_EXPECT(onnxq_dynamic_quantize(a, 6, 2, 3, 2, 0, q, 6, &s, &z, 1) == ONNXQ_E_SHAPE,
                 "ldx < cols");
    ONNXQ_EXPECT(onnxq_dynamic_quantize(a, 6, 0, 3, 3, 0, q, 6, &s, &z, 1) == ONNXQ_E_SHAPE,
                 "rows = 0");
    ONNXQ_EXPECT(onnxq_dynamic_quantize(a, 5, 2, 3, 3, 0, q, 6, &s, &z, 1) == ONNXQ_E_SHAPE,
                 "short x");
    ONNXQ_EXPECT(onnxq_dynamic_quantize(a, 6, 2, 3, 3, 0, q, 5, &s, &z, 1) == ONNXQ_E_SHAPE,
                 "short q");
    ONNXQ_EXPECT(onnxq_dynamic_quantize(a, 6, 2, 3, 3, 1, q, 6, &s, &z, 1) == ONNXQ_E_SHAPE,
                 "per row with 1 scale");
    /* non-finite input or a non-finite / zero scale: an error, nothing written, on every ISA */
    static const float bad_rows[][3] = {
        {1, NAN, 2}, {INFINITY, 0, 0}, {0, -INFINITY, 0}, {-3e38f, 3e38f, 0}, {1e-45f, 0, 0},
    };
    for (size_t r = 0; r < sizeof bad_rows / sizeof bad_rows[0]; ++r) {
        float x2[6] = {0, 0, 0, 0, 0, 0};
        memcpy(x2 + 3, bad_rows[r], sizeof bad_rows[r]);
        for (int mode = 0; mode < 2; ++mode) {
            ONNXQ_TEST_FOREACH_ISA(isa) {
                uint8_t q2[6] = {9, 9, 9, 9, 9, 9};
                float s2[2] = {-1, -1};
                int32_t z2[2] = {-1, -1};
                const int st = onnxq_dynamic_quantize(x2, 6, 2, 3, 3, mode, q2, 6, s2, z2,
                                                      mode ? 2 : 1);
                ONNXQ_EXPECT(st == ONNXQ_E_ARG, "bad row %zu mode %d: status %d", r, mode, st);
                ONNXQ_EXPECT(q2[0] == 9 && q2[5] == 9 && s2[0] == -1 && z2[0] == -1,
                             "bad row %zu mode %d: output written on error", r, mode);
            }
        }
    }
    onnxq_isa_set(NULL);
    /* a NaN in every position of vectors of every length is seen by every ISA */
    for (size_t len = 1; len <= 70; ++len) {
        float* v = malloc(len * sizeof(float));
        uint8_t* qv = malloc(len);
        for (size_t pos = 0; pos < len; ++pos) {
            for (size_t i = 0; i < len; ++i) v[i] = (float)i - 3.0f;
            v[pos] = NAN;
            ONNXQ_TEST_FOREACH_ISA(isa) {
                ONNXQ_EXPECT(onnxq_dynamic_quantize(v, len, 1, len, len, 0, qv, len, &s, &z, 1) ==
                                 ONNXQ_E_ARG,
                             "NaN at %zu of %zu accepted", pos, len);
            }
        }
        free(v), free(qv);
    }
    onnxq_isa_set(NULL);
    free(packed);
}

void onnxq_test_dynamic(void) {
    test_quantize_values();
    test_isas_agree();
    test_bad_arguments();
}
