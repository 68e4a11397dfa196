/* The scalar step of the grid counts: one value's cell, shared by scalar.c and the vector
 * kernels' tails. One double multiply, a truncating conversion corrected to the floor (no libm
 * call: the baseline x86-64 has no rounding instruction). */
#ifndef ONNXQ_HIST_TAIL_H
#define ONNXQ_HIST_TAIL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "onnxq/hist.h"

#define ONNXQ_HIST_FAR 4.0e18 /* below 2^62: truncation to int64 is defined, k0 subtracts safely */

static inline size_t onnxq_hist_clip_cell(double d, double top) {
    if (!(d >= 0.0)) return 0; /* below the grid, or NaN */
    return d > top ? (size_t)top : (size_t)d;
}

/* clamp(floor(v * inv) - k0, 0, top), NaN -> 0. */
static inline size_t onnxq_hist_cell(float v, double inv, double k0, double top) {
    const double t = (double)v * inv; /* exact: a power-of-two scaling */
    if (!(t > -ONNXQ_HIST_FAR && t < ONNXQ_HIST_FAR)) return onnxq_hist_clip_cell(floor(t) - k0, top);
    int64_t i = (int64_t)t; /* toward zero */
    i -= (double)i > t;     /* the floor */
    const int64_t c = i - (int64_t)k0;
    if (c < 0) return 0;
    return (double)c > top ? (size_t)top : (size_t)c;
}

#endif /* ONNXQ_HIST_TAIL_H */
