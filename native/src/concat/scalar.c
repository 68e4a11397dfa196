/* Requantisation for concat, portable C: a 256-entry lookup table (built by concat.c). */
#include "concat/ukernel.h"

void onnxq_requant_u8_ukernel_1__scalar(size_t n, const uint8_t* x, uint8_t* y,
                                        const onnxq_requant_ukernel_params* p) {
    for (size_t i = 0; i < n; ++i) y[i] = p->table[x[i]];
}

void onnxq_requant_s8_ukernel_1__scalar(size_t n, const int8_t* x, int8_t* y,
                                        const onnxq_requant_ukernel_params* p) {
    for (size_t i = 0; i < n; ++i) y[i] = (int8_t)p->table[(uint8_t)x[i]];
}
