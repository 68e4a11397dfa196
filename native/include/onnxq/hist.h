/* Histogram counts on a power-of-two grid (the calibration observers' running histograms).
 *
 * Value v goes to cell c = floor((double)v * inv) - k0, inv = 2^-e, clamped to [0, cells - 1]
 * (NaN to 0; the observers pass finite values only). The scaling by a power of two and the floor
 * are exact in double for every float32 value, so a value's cell never depends on rounding.
 * Element i of x counts into lane i % ONNXQ_HIST_LANES of counts, viewed as [lanes, cells]
 * (runs of equal values, ReLU's zeros, then do not serialise one counter); the caller sums the
 * lanes. counts is added to, not cleared. Lengths are checked: counts_len = lanes * cells.
 */
#ifndef ONNXQ_HIST_H
#define ONNXQ_HIST_H

#include <stddef.h>
#include <stdint.h>

enum { ONNXQ_HIST_LANES = 2 };

/* inv must be a power of two (2^-1074 .. 2^1023), |k0| < 2^62, 1 <= cells <= 2^30. */
int onnxq_grid_counts_f32(const float* x, size_t x_len, double inv, int64_t k0, int64_t* counts,
                          size_t counts_len, size_t cells);

#endif /* ONNXQ_HIST_H */
