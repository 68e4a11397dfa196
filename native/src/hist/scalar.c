/* Grid counts, portable C: one double multiply, a truncating conversion corrected to the floor
 * (no libm call: the baseline x86-64 has no rounding instruction), two interleaved lanes. */
#include <math.h>

#include "hist/ukernel.h"

#define ONNXQ_HIST_FAR 4.0e18 /* below 2^62: truncation to int64 is defined, k0 subtracts safely */

static inline size_t clip_cell(double d, double top) {
    if (!(d >= 0.0)) return 0; /* below the grid, or NaN */
    return d > top ? (size_t)top : (size_t)d;
}

static inline size_t cell_of(float v, double inv, double k0, double top) {
    const double t = (double)v * inv; /* exact: a power-of-two scaling */
    if (!(t > -ONNXQ_HIST_FAR && t < ONNXQ_HIST_FAR)) return clip_cell(floor(t) - k0, top);
    int64_t i = (int64_t)t;  /* toward zero */
    i -= (double)i > t;      /* the floor */
    const int64_t c = i - (int64_t)k0;
    if (c < 0) return 0;
    return (double)c > top ? (size_t)top : (size_t)c;
}

void onnxq_grid_counts_f32_ukernel_1__scalar(size_t n, const float* x, double inv, double k0,
                                             size_t cells, int64_t* counts) {
    const double top = (double)(cells - 1);
    int64_t* l0 = counts;
    int64_t* l1 = counts + cells;
    size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        l0[cell_of(x[i], inv, k0, top)] += 1;
        l1[cell_of(x[i + 1], inv, k0, top)] += 1;
    }
    if (i < n) l0[cell_of(x[i], inv, k0, top)] += 1;
}
