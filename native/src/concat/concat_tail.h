/* The scalar requantisation step of the concat family: a lookup in the 256-entry table that
 * concat.c builds with the same fp32 steps as the vector kernels. It is the whole scalar kernel
 * and the tail of every vector kernel that has no masked loads. */
#ifndef ONNXQ_CONCAT_TAIL_H
#define ONNXQ_CONCAT_TAIL_H

#include <stddef.h>
#include <stdint.h>

#include "concat/ukernel.h"

/* y[i] = p->table[x[i]] for first <= i < n (int8 values indexed by their raw byte). */
static inline void onnxq_requant_tail(size_t first, size_t n, const uint8_t* x, uint8_t* y,
                                      const onnxq_requant_ukernel_params* p) {
    for (size_t i = first; i < n; ++i) y[i] = p->table[x[i]];
}

#endif /* ONNXQ_CONCAT_TAIL_H */
