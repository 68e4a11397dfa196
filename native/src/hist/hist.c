/* Grid counts entry point: validation, then the selected micro-kernel. */
#include <math.h>

#include "common/internal.h"
#include "onnxq/hist.h"
#include "onnxq_kernels.h"

int onnxq_grid_counts_f32(const float* x, size_t x_len, double inv, int64_t k0, int64_t* counts,
                          size_t counts_len, size_t cells) {
    ONNXQ_CHECK_NOT_NULL(counts, "counts");
    if (x_len > 0) ONNXQ_CHECK_NOT_NULL(x, "x");
    if (cells == 0 || cells > ((size_t)1 << 30))
        return onnxq_error(ONNXQ_E_ARG, "grid_counts: cells = %zu, expected 1..2^30", cells);
    if (counts_len != (size_t)ONNXQ_HIST_LANES * cells)
        return onnxq_error(ONNXQ_E_SHAPE, "grid_counts: counts has %zu entries, expected %d x %zu",
                           counts_len, (int)ONNXQ_HIST_LANES, cells);
    int exponent = 0;
    if (!isfinite(inv) || !(inv > 0.0) || frexp(inv, &exponent) != 0.5)
        return onnxq_error(ONNXQ_E_ARG, "grid_counts: inv = %g, expected a power of two", inv);
    const int64_t limit = (int64_t)1 << 62;
    if (k0 <= -limit || k0 >= limit)
        return onnxq_error(ONNXQ_E_ARG, "grid_counts: k0 = %lld, expected |k0| < 2^62", (long long)k0);
    const onnxq_grid_counts_f32_entry* e = onnxq_grid_counts_f32_select();
    if (e == NULL) return onnxq_isa_check();
    e->fn(x_len, x, inv, (double)k0, cells, counts);
    return ONNXQ_OK;
}
