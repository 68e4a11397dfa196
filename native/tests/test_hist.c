/* C tests of the grid counts: every ISA present agrees with the scalar kernel, hand-checked cells
 * (edges, values outside the grid clipped to the end cells, NaN to cell 0), lanes summed by the
 * caller, bad arguments fail cleanly and write nothing; the KL divergences of the entropy search
 * (their doubles are checked against the numpy reference from Python). */
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

/* want[c] = the lane sums of counts (what the caller sees). */
static void sum_lanes(const int64_t* counts, size_t cells, int64_t* want) {
    for (size_t c = 0; c < cells; ++c) want[c] = lane_sum(counts, cells, c);
}

static void test_isas_agree(void) {
    const size_t n = 10007, cells = 4096;
    float* x = malloc(n * sizeof *x);
    int64_t* lanes = malloc(ONNXQ_HIST_LANES * cells * sizeof *lanes);
    int64_t* want = malloc(cells * sizeof *want);
    int64_t* got = malloc(cells * sizeof *got);
    onnxq_test_fill_f32(x, n, -3.0f, 5.0f);
    for (size_t i = 0; i < n; i += 5) x[i] = 0.0f;            /* scattered equal values */
    for (size_t i = 1000; i < 1100; ++i) x[i] = 0.0f;         /* a run: whole vectors of one cell */
    for (size_t i = 2001; i < 2050; ++i) x[i] = 1.0f;         /* a run across vector boundaries */
    x[3000] = NAN, x[3001] = INFINITY, x[3002] = -INFINITY;  /* end cells */
    x[3003] = 1e30f, x[3004] = -1e30f, x[3005] = -3.0f, x[3006] = 5.0f;
    onnxq_isa_set("scalar");
    memset(lanes, 0, ONNXQ_HIST_LANES * cells * sizeof *lanes);
    ONNXQ_EXPECT(onnxq_grid_counts_f32(x, n, 512.0, -1536, lanes, ONNXQ_HIST_LANES * cells, cells) ==
                 ONNXQ_OK, "%s", onnxq_last_error());
    sum_lanes(lanes, cells, want);
    ONNXQ_TEST_FOREACH_ISA(isa) {
        for (size_t len = n - 9; len <= n; ++len) { /* every tail length of an 8-wide step */
            int64_t* ref = calloc(ONNXQ_HIST_LANES * cells, sizeof *ref);
            onnxq_isa_set("scalar");
            ONNXQ_EXPECT(onnxq_grid_counts_f32(x, len, 512.0, -1536, ref, ONNXQ_HIST_LANES * cells,
                                               cells) == ONNXQ_OK, "%s", onnxq_last_error());
            onnxq_isa_set(onnxq_isa_name(isa));
            memset(lanes, 0, ONNXQ_HIST_LANES * cells * sizeof *lanes);
            ONNXQ_EXPECT(onnxq_grid_counts_f32(x, len, 512.0, -1536, lanes, ONNXQ_HIST_LANES * cells,
                                               cells) == ONNXQ_OK, "%s: %s", onnxq_isa_name(isa),
                         onnxq_last_error());
            sum_lanes(lanes, cells, got);
            sum_lanes(ref, cells, ref);
            ONNXQ_EXPECT(memcmp(got, ref, cells * sizeof *got) == 0,
                         "isa %s differs from scalar at %zu values", onnxq_isa_name(isa), len);
            free(ref);
        }
    }
    onnxq_isa_set(NULL);
    int64_t total = 0;
    for (size_t c = 0; c < cells; ++c) total += want[c];
    ONNXQ_EXPECT(total == (int64_t)n, "counted %lld of %zu values", (long long)total, n);
    ONNXQ_EXPECT(want[0] >= 3 && want[cells - 1] >= 3, "end cells: %lld and %lld", (long long)want[0],
                 (long long)want[cells - 1]);
    free(x);
    free(lanes);
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

static void test_kl(void) {
    enum { BINS = 64, Q = 8, OUT = BINS / 2 - Q / 2 + 1 };
    double hist[BINS], out[OUT];
    for (size_t j = 0; j < BINS; ++j) hist[j] = (double)((j * 7919) % 13); /* some zeros */
    ONNXQ_EXPECT(onnxq_kl_divergences_f64(hist, BINS, Q, out, OUT) == ONNXQ_OK, "%s", onnxq_last_error());
    for (size_t i = 0; i < OUT; ++i)
        ONNXQ_EXPECT(isfinite(out[i]) && out[i] > -1e-12, "candidate %zu: divergence %g", i, out[i]);
    double empty[BINS] = {0};
    ONNXQ_EXPECT(onnxq_kl_divergences_f64(empty, BINS, Q, out, OUT) == ONNXQ_OK, "%s", onnxq_last_error());
    for (size_t i = 0; i < OUT; ++i) ONNXQ_EXPECT(isinf(out[i]), "empty histogram: candidate %zu", i);
    memset(out, 0, sizeof out);
    ONNXQ_EXPECT(onnxq_kl_divergences_f64(hist, BINS, Q, out, OUT - 1) == ONNXQ_E_SHAPE, "short out");
    ONNXQ_EXPECT(onnxq_kl_divergences_f64(hist, BINS, BINS + 1, out, OUT) == ONNXQ_E_ARG, "Q > bins");
    ONNXQ_EXPECT(onnxq_kl_divergences_f64(hist, 1, 2, out, 1) == ONNXQ_E_ARG, "1 bin");
    ONNXQ_EXPECT(onnxq_kl_divergences_f64(NULL, BINS, Q, out, OUT) != ONNXQ_OK, "NULL hist");
    ONNXQ_EXPECT(onnxq_kl_divergences_f64(hist, BINS, Q, NULL, OUT) != ONNXQ_OK, "NULL out");
    hist[5] = -1.0;
    ONNXQ_EXPECT(onnxq_kl_divergences_f64(hist, BINS, Q, out, OUT) == ONNXQ_E_ARG, "negative count");
    hist[5] = NAN;
    ONNXQ_EXPECT(onnxq_kl_divergences_f64(hist, BINS, Q, out, OUT) == ONNXQ_E_ARG, "NaN count");
    hist[5] = 1e300;
    ONNXQ_EXPECT(onnxq_kl_divergences_f64(hist, BINS, Q, out, OUT) == ONNXQ_E_ARG, "count > 2^53");
    for (size_t i = 0; i < OUT; ++i) ONNXQ_EXPECT(out[i] == 0.0, "a refused call wrote out");
}

void onnxq_test_hist(void) {
    test_kl();
    test_hand_checked();
    test_isas_agree();
    test_bad_arguments();
}
