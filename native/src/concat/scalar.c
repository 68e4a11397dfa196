/* Requantisation for concat, portable C: a 256-entry lookup table (built by concat.c). */
#include "concat/concat_tail.h"
#include "concat/ukernel.h"

void onnxq_requant_u8_ukernel_1__scalar(size_t n, const uint8_t* x, uint8_t* y,
                                        const onnxq_requant_ukernel_params* p) {
    onnxq_requant_tail(0, n, x, y, p);
}

void onnxq_requant_s8_ukernel_1__scalar(size_t n, const int8_t* x, int8_t* y,
                                        const onnxq_requant_ukernel_params* p) {
    onnxq_requant_tail(0, n, (const uint8_t*)x, (uint8_t*)y, p);
}
