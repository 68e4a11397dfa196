/* KL divergence of every candidate window of the entropy calibration (onnxq/hist.h). Portable C
 * only: its cost is a logarithm per kept bin, which no vector ISA here computes bit-exactly.
 *
 * Per candidate, with ps/qs the smoothed p/q and Sp/Sq their sums,
 *   KL = sum_j (ps_j / Sp) log((ps_j / Sp) / (qs_j / Sq)) = A / Sp + log(Sq / Sp),
 *   A = sum_j ps_j log(ps_j / qs_j),
 * and Sp = P - n_p eps1_p + z_p eps, Sq = Q - n_q eps1_q + z_q eps follow from the counts (P, Q the
 * unsmoothed totals, n the nonzeros, z the zeros) in O(1). Each kept bin costs a multiplication by
 * its group's 1 / qs and a logarithm, skipped when its ratio is the previous bin's (empty bins,
 * flat groups). A runs left to right; the numpy reference computes the same doubles. */
#include <math.h>
#include <stdlib.h>

#include "common/internal.h"
#include "onnxq/hist.h"

typedef struct {
    const double* hist;
    const double* cum;   /* cum[j] = hist[0] + ... + hist[j - 1] */
    const size_t* nzcum; /* nzcum[j] = nonzero entries of hist[0 .. j) */
    size_t bins, q_bins;
    double* spread; /* q_bins scratch */
} kl_ctx;

/* Nonzero entries of p over positions [a, b) of the window starting at start, p being the window
 * of hist with p0 at position 0 and p_last at position len - 1. */
static size_t p_nonzero(const kl_ctx* c, size_t start, size_t len, double p0, double p_last, size_t a,
                        size_t b) {
    if (a >= b) return 0;
    size_t n = c->nzcum[start + b] - c->nzcum[start + a];
    if (a == 0) n += (size_t)(p0 != 0.0) - (size_t)(c->hist[start] != 0.0);
    if (b == len) n += (size_t)(p_last != 0.0) - (size_t)(c->hist[start + len - 1] != 0.0);
    return n;
}

static double window_kl(const kl_ctx* c, size_t start, size_t end) {
    const double* hist = c->hist;
    const size_t len = end - start, q_bins = c->q_bins, m = len / q_bins, bins = c->bins;
    const double p0 = hist[start] + c->cum[start];
    const double p_last = hist[end - 1] + (c->cum[bins] - c->cum[end]);
    const size_t nz_p = p_nonzero(c, start, len, p0, p_last, 0, len);
    if (nz_p == 0) return INFINITY;
    /* q: group g's kept counts spread over its m positions in whole counts; the rest 0 */
    double q_total = 0.0;
    size_t nz_q = 0;
    for (size_t g = 0; g < q_bins; ++g) {
        const size_t lo = start + g * m, hi = g == q_bins - 1 ? end : lo + m;
        const size_t n = p_nonzero(c, start, len, p0, p_last, g * m, g * m + m);
        const double s = n > 0 ? floor((c->cum[hi] - c->cum[lo]) / (double)n) : 0.0;
        c->spread[g] = s;
        if (s != 0.0) {
            nz_q += m;
            q_total += s * (double)m;
        }
    }
    if (nz_q == 0) return INFINITY;
    const double eps = ONNXQ_KL_EPS;
    const double eps1_p = eps * (double)(len - nz_p) / (double)nz_p;
    const double eps1_q = eps * (double)(len - nz_q) / (double)nz_q;
    const double sp = c->cum[bins] - (double)nz_p * eps1_p + (double)(len - nz_p) * eps;
    const double sq = q_total - (double)nz_q * eps1_q + (double)(len - nz_q) * eps;
    double a = 0.0, last_ratio = 1.0, last_log = 0.0;
    for (size_t g = 0; g <= q_bins; ++g) { /* group g's positions; g = q_bins: the remainder */
        const size_t j0 = g * m, j1 = g < q_bins ? j0 + m : len;
        const double q = g < q_bins ? c->spread[g] : 0.0;
        const double inv_qs = 1.0 / (q == 0.0 ? eps : q - eps1_q);
        for (size_t j = j0; j < j1; ++j) {
            const double p = j == 0 ? p0 : j == len - 1 ? p_last : hist[start + j];
            const double ps = p == 0.0 ? eps : p - eps1_p;
            const double ratio = ps * inv_qs;
            if (ratio != last_ratio) { /* runs of one ratio: one logarithm */
                last_ratio = ratio;
                last_log = log(ratio);
            }
            a += ps * last_log;
        }
    }
    const double kl = a / sp + log(sq / sp);
    return isnan(kl) ? INFINITY : kl;
}

int onnxq_kl_divergences_f64(const double* hist, size_t bins, size_t quantized_bins, double* out,
                             size_t out_len) {
    if (bins < 2 || bins > ONNXQ_KL_MAX_BINS)
        return onnxq_error(ONNXQ_E_ARG, "kl_divergences: bins = %zu, expected 2..%d", bins,
                           (int)ONNXQ_KL_MAX_BINS);
    if (quantized_bins < 2 || quantized_bins > bins)
        return onnxq_error(ONNXQ_E_ARG, "kl_divergences: quantized_bins = %zu, expected 2..%zu",
                           quantized_bins, bins);
    ONNXQ_CHECK_NOT_NULL(hist, "kl_divergences: hist");
    const size_t z = bins / 2, first = quantized_bins / 2;
    int status = onnxq_check_array("kl_divergences", "out", out, out_len, z - first + 1, 1);
    if (status != ONNXQ_OK) return status;
    for (size_t j = 0; j < bins; ++j)
        if (!(hist[j] >= 0.0 && hist[j] <= ONNXQ_KL_MAX_COUNT))
            return onnxq_error(ONNXQ_E_ARG,
                               "kl_divergences: hist[%zu] = %g, expected a count 0..2^53", j,
                               hist[j]);
    double* cum = malloc((bins + 1 + quantized_bins) * sizeof *cum);
    size_t* nzcum = malloc((bins + 1) * sizeof *nzcum);
    if (cum == NULL || nzcum == NULL) {
        free(cum);
        free(nzcum);
        return onnxq_error(ONNXQ_E_NOMEM, "kl_divergences: out of memory");
    }
    cum[0] = 0.0;
    nzcum[0] = 0;
    for (size_t j = 0; j < bins; ++j) {
        cum[j + 1] = cum[j] + hist[j];
        nzcum[j + 1] = nzcum[j] + (hist[j] != 0.0);
    }
    const double total = cum[bins];
    if (!(total <= ONNXQ_KL_MAX_COUNT)) {
        free(cum);
        free(nzcum);
        return onnxq_error(ONNXQ_E_ARG, "kl_divergences: the counts sum to %g, expected at most 2^53",
                           total);
    }
    const kl_ctx c = {hist, cum, nzcum, bins, quantized_bins, cum + bins + 1};
    for (size_t i = first; i <= z; ++i) {
        const size_t start = z - i, end = z + i + 1 < bins ? z + i + 1 : bins;
        out[i - first] = window_kl(&c, start, end);
    }
    free(cum);
    free(nzcum);
    return ONNXQ_OK;
}
