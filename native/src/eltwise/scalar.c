/* Quantized add, portable C: fmaf (correctly rounded) per element. */
#include "eltwise/eltwise_tail.h"
#include "eltwise/ukernel.h"

void onnxq_qadd_u8_ukernel_1__scalar(size_t n, const uint8_t* a, const uint8_t* b, uint8_t* y,
                                     const onnxq_qadd_ukernel_params* p) {
    onnxq_qadd_tail(0, n, a, b, y, p, 0);
}

void onnxq_qadd_s8_ukernel_1__scalar(size_t n, const int8_t* a, const int8_t* b, int8_t* y,
                                     const onnxq_qadd_ukernel_params* p) {
    onnxq_qadd_tail(0, n, (const uint8_t*)a, (const uint8_t*)b, (uint8_t*)y, p, 1);
}
