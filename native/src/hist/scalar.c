/* Grid counts, portable C: the scalar step (hist_tail.h) over four interleaved lanes. */
#include "hist/hist_tail.h"
#include "hist/ukernel.h"

void onnxq_grid_counts_f32_ukernel_1__scalar(size_t n, const float* x, double inv, double k0,
                                             size_t cells, int64_t* counts) {
    const double top = (double)(cells - 1);
    int64_t* l0 = counts;
    int64_t* l1 = counts + cells;
    int64_t* l2 = counts + 2 * cells;
    int64_t* l3 = counts + 3 * cells;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        l0[onnxq_hist_cell(x[i], inv, k0, top)] += 1;
        l1[onnxq_hist_cell(x[i + 1], inv, k0, top)] += 1;
        l2[onnxq_hist_cell(x[i + 2], inv, k0, top)] += 1;
        l3[onnxq_hist_cell(x[i + 3], inv, k0, top)] += 1;
    }
    for (; i < n; ++i) counts[(i % ONNXQ_HIST_LANES) * cells + onnxq_hist_cell(x[i], inv, k0, top)] += 1;
}
