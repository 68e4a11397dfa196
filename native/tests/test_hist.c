/* C tests of the grid counts: every ISA present agrees with the scalar kernel, hand-checked cells
 * (edges, values outside the grid clipped to the end cells, NaN to cell 0), lanes summed by the
 * caller, bad arguments fail cleanly and write nothing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onnxq/hist.h"
#include "test_util.h"

enum { CELLS = 16 };

static int64_t lane_sum(const int64_t* counts, size_t cells, size_t c) {
    int64_t s = 0;
    for (size_t l = 0; l < (size_t)ONNXQ_HIST_LANES; ++l) s += counts[l * cells + c];
    return s;
}

static void test_hand_checked(void) {
    /* cells of 0.25 over [-2, 2): k0 = -8, inv = 4 */
    const float x[] = {-2.0f, -1.75f, -0.0f, 0.0f, 0.24f, 0.25f, 1.99f, 2.0f, 1e30f, -3.0f, NAN};
    const size_t want_cell[] = {0, 1, 8, 8, 8, 9, 15, 15, 15, 0, 0};
    int64_t counts[ONNXQ_HIST_LANES * CELLS];
    for (size_t i = 0; i < sizeof x / sizeof x[0]; ++i) {
        memset(counts, 0, sizeof counts);
        ONNXQ_EXPECT(onnxq_grid_counts_f32(&x[i], 1, 4.0, -8, counts, ONNXQ_HIST_LANES * CELLS,
                                           CELLS) == ONNXQ_OK, "%s", onnxq_last_error());
        ONNXQ_EXPECT(lane_sum(counts, CELLS, want_cell[i]) == 1, "value %g: expected cell %zu",
                     (double)x[i], want_cell[i]);
    }
}

static void test_isas_agree(void) {
    const size_t n = 10007, cells = 4096;
    float* x = malloc(n * sizeof *x);
    int64_t* want = calloc(ONNXQ_HIST_LANES * cells, sizeof *want);
    int64_t* got = malloc(ONNXQ_HIST_LANES * cells * sizeof *got);
    onnxq_test_fill_f32(x, n, -3.0f, 5.0f);
    for (size_t i = 0; i < n; i += 5) x[i] = 0.0f; /* runs of one value */
    onnxq_isa_set("scalar");
    ONNXQ_EXPECT(onnxq_grid_counts_f32(x, n, 512.0, -1536, want, ONNXQ_HIST_LANES * cells, cells) ==
                 ONNXQ_OK, "%s", onnxq_last_error());
    ONNXQ_TEST_FOREACH_ISA(isa) {
        memset(got, 0, ONNXQ_HIST_LANES * cells * sizeof *got);
        ONNXQ_EXPECT(onnxq_grid_counts_f32(x, n, 512.0, -1536, got, ONNXQ_HIST_LANES * cells, cells) ==
                     ONNXQ_OK, "%s: %s", onnxq_isa_name(isa), onnxq_last_error());
        ONNXQ_EXPECT(memcmp(got, want, ONNXQ_HIST_LANES * cells * sizeof *got) == 0,
                     "isa %s differs from scalar", onnxq_isa_name(isa));
    }
    onnxq_isa_set(NULL);
    int64_t total = 0;
    for (size_t c = 0; c < cells; ++c) total += lane_sum(want, cells, c);
    ONNXQ_EXPECT(total == (int64_t)n, "counted %lld of %zu values", (long long)total, n);
    free(x);
    free(want);
    free(got);
}

static void test_bad_arguments(void) {
    float x[3] = {1.0f, 2.0f, 3.0f};
    int64_t counts[ONNXQ_HIST_LANES * 4];
    memset(counts, 0, sizeof counts);
    const size_t len = ONNXQ_HIST_LANES * 4;
    ONNXQ_EXPECT(onnxq_grid_counts_f32(x, 3, 0.75, 0, counts, len, 4) == ONNXQ_E_ARG, "inv 0.75");
    ONNXQ_EXPECT(onnxq_grid_counts_f32(x, 3, INFINITY, 0, counts, len, 4) == ONNXQ_E_ARG, "inv inf");
    ONNXQ_EXPECT(onnxq_grid_counts_f32(x, 3, 1.0, 0, counts, len - 1, 4) == ONNXQ_E_SHAPE, "short");
    ONNXQ_EXPECT(onnxq_grid_counts_f32(x, 3, 1.0, 0, counts, len, 0) == ONNXQ_E_ARG, "0 cells");
    ONNXQ_EXPECT(onnxq_grid_counts_f32(NULL, 3, 1.0, 0, counts, len, 4) != ONNXQ_OK, "NULL x");
    ONNXQ_EXPECT(onnxq_grid_counts_f32(x, 3, 1.0, 0, NULL, len, 4) != ONNXQ_OK, "NULL counts");
    ONNXQ_EXPECT(onnxq_grid_counts_f32(x, 3, 1.0, (int64_t)1 << 62, counts, len, 4) == ONNXQ_E_ARG,
                 "k0 2^62");
    for (size_t i = 0; i < len; ++i) ONNXQ_EXPECT(counts[i] == 0, "a refused call wrote counts");
    ONNXQ_EXPECT(onnxq_grid_counts_f32(NULL, 0, 1.0, 0, counts, len, 4) == ONNXQ_OK, "empty x");
}

void onnxq_test_hist(void) {
    test_hand_checked();
    test_isas_agree();
    test_bad_arguments();
}
