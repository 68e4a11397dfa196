/* Micro-kernel types of the hist family: count n float32 values into grid cells. */
#ifndef ONNXQ_HIST_UKERNEL_H
#define ONNXQ_HIST_UKERNEL_H

#include <stddef.h>
#include <stdint.h>

/* counts[lane * cells + clamp(floor(x[i] * inv) - k0, 0, cells - 1)] += 1 (NaN -> cell 0), lane
 * 0..ONNXQ_HIST_LANES-1 of the kernel's choosing. */
typedef void onnxq_grid_counts_f32_ukernel_fn(size_t n, const float* x, double inv, double k0,
                                              size_t cells, int64_t* counts);

#endif /* ONNXQ_HIST_UKERNEL_H */
