/* The AVX2 u8s8 GEMM's path for A below 128 (private; see u7_avx2.c). */
#ifndef ONNXQ_GEMM_U7_AVX2_H
#define ONNXQ_GEMM_U7_AVX2_H

#include <stddef.h>
#include <stdint.h>

#include "gemm/ukernel.h"

/* 1 when every one of the k bytes of each of the m rows of A (row stride lda) is below 128. */
int onnxq_gemm_a_below_128_avx2(const uint8_t* a, size_t lda, size_t m, size_t k);

/* Rows [0, m) of C, exactly as the int16 kernel computes them; A must be below 128. */
void onnxq_gemm_u7s8_avx2(const onnxq_gemm_u8s8_ctx* ctx, const uint8_t* a, size_t lda, size_t m);

#endif /* ONNXQ_GEMM_U7_AVX2_H */
