/* The AVX2 u8s8 GEMM's row and panel preparation (private to gemm/avx2.c; see avx2_prep.c). */
#ifndef ONNXQ_GEMM_AVX2_PREP_H
#define ONNXQ_GEMM_AVX2_PREP_H
#include <stddef.h>
#include <stdint.h>

/* Bytes of 128 or more a step may have and still run vpmaddubsw (with the sparse fix-up). */
static inline size_t onnxq_avx2_fix_cap(size_t k) { return k / 16 + 1; }

/* Number of bytes of 128 or more among the k bytes of row a, counting stops past cap. */
size_t onnxq_avx2_row_high_count(const uint8_t* a, size_t k, size_t cap);
/* Row a with the top bits cleared to dst; positions of the bytes of 128 or more to pos. */
size_t onnxq_avx2_split_row(const uint8_t* a, size_t k, uint8_t* dst, uint32_t* pos);
/* init[r * 16 + c] = corr[c] + sum over row r's positions p of 128 * B[p, c] (packed block b). */
void onnxq_avx2_fixup_init(const int32_t* corr, const int8_t* b, const uint32_t* pos,
                           const uint32_t* off, size_t rows, int32_t* init);
/* Row a (k bytes) widened into np int16 pairs at dst, zeros past k. */
void onnxq_avx2_widen_a_row(const uint8_t* a, size_t k, size_t np, int32_t* dst);
/* Groups [0, ng) of packed block b widened into 2 * ng pairs of the B panel. */
void onnxq_avx2_widen_b_panel(const int8_t* b, size_t ng, int16_t* dst);

#endif
