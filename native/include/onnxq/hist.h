/* Histogram counts on a power-of-two grid (the calibration observers' running histograms).
 *
 * Value v goes to cell c = floor((double)v * inv) - k0, inv = 2^-e, clamped to [0, cells - 1]
 * (NaN to 0; the observers pass finite values only). The scaling by a power of two and the floor
 * are exact in double for every float32 value, so a value's cell never depends on rounding.
 * counts is viewed as [ONNXQ_HIST_LANES, cells] sub-histograms, and the caller sums them: the
 * micro-kernels spread values over the lanes so that runs of equal cells (ReLU's zeros) do not
 * serialise one counter, and how they spread them is their own (only the sums are defined).
 * counts is added to, not cleared. Lengths are checked: counts_len = lanes * cells.
 */
#ifndef ONNXQ_HIST_H
#define ONNXQ_HIST_H

#include <stddef.h>
#include <stdint.h>

enum { ONNXQ_HIST_LANES = 4 };

/* inv must be a power of two (2^-1074 .. 2^1023), |k0| < 2^62, 1 <= cells <= 2^30. */
int onnxq_grid_counts_f32(const float* x, size_t x_len, double inv, int64_t k0, int64_t* counts,
                          size_t counts_len, size_t cells);

/* KL divergence of every candidate window of TensorRT's entropy calibration (onnxruntime's
 * get_entropy_threshold; the maths: onnxq/calibration/observers/kl_search.py). hist holds bins
 * counts (non-negative, at most 2^53 in all; a resampled histogram's are fractional) over
 * [-T, T]; z = bins / 2. Candidate i, from quantized_bins / 2 to z, keeps bins
 * [z - i, min(z + i + 1, bins)); out[i - quantized_bins / 2] is its divergence, INFINITY where it
 * has none. Sums run left to right and the logarithm is the C library's, so the numpy reference
 * computes the same doubles. out_len = z - quantized_bins / 2 + 1. */
enum { ONNXQ_KL_MAX_BINS = 1 << 20 };
#define ONNXQ_KL_EPS 1e-4
#define ONNXQ_KL_MAX_COUNT 9007199254740992.0 /* 2^53: counts and their sums are exact */

int onnxq_kl_divergences_f64(const double* hist, size_t bins, size_t quantized_bins, double* out,
                             size_t out_len);

#endif /* ONNXQ_HIST_H */
