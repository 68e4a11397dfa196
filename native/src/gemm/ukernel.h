/* Packed-B layout and micro-kernel type of the u8s8 GEMM family (private).
 *
 * Packed buffer: [header][colsum int32 x nb*16][weights]. Weights: nb blocks of 16 columns; block
 * j holds kq groups of 64 bytes; group g holds, for column c = 0..15 of the block, the 4 bytes
 * B[4g .. 4g+3, 16j + c] (zeros past K and N). kq = ceil(K / 64) * 16, so AMX reads a 16 x 64-byte
 * B tile straight from the buffer and other ISAs read 64 bytes per 4-deep K step.
 */
#ifndef ONNXQ_GEMM_UKERNEL_H
#define ONNXQ_GEMM_UKERNEL_H

#include <stddef.h>
#include <stdint.h>

#include "onnxq/onnxq.h"

#define ONNXQ_GEMM_MAGIC 0x4d4d4751u /* "QGMM" */
#define ONNXQ_GEMM_VERSION 1u
#define ONNXQ_GEMM_NR 16            /* columns per packed block */
#define ONNXQ_GEMM_KC 64            /* K padding (AMX tile row) */

/* flags: every weight is in [-64, 64] (checked when packing), so |a0 b0 + a1 b1| <= 255 * 64 * 2
 * = 32640 for any u8 a: a pair of u8 x s8 products fits int16 and vpmaddubsw cannot saturate. */
#define ONNXQ_GEMM_SMALL_WEIGHTS 1u
#define ONNXQ_GEMM_SMALL_WEIGHT_MAX 64

struct onnxq_gemm_u8s8_packed {
    uint32_t magic;
    uint16_t version;
    uint16_t flags;       /* ONNXQ_GEMM_SMALL_WEIGHTS or 0 (buffers of before the flag: 0) */
    uint64_t k;           /* logical K */
    uint64_t n;           /* logical N */
    uint64_t kq;          /* 4-deep groups per block (padded) */
    uint64_t nb;          /* 16-column blocks */
    uint64_t colsum_off;  /* byte offset of int32 colsum[nb * 16] */
    uint64_t data_off;    /* byte offset of the weights */
    uint64_t total;       /* bytes of the whole buffer */
};

/* Everything a micro-kernel needs; built by onnxq_gemm_u8s8_run. Arrays are padded to nb * 16. */
typedef struct onnxq_gemm_u8s8_ctx {
    const int8_t* w;        /* packed weights */
    size_t k;               /* logical K */
    size_t kq;              /* groups per block (block stride = kq * 64 bytes) */
    size_t n;               /* logical N */
    size_t nb;              /* blocks */
    const int32_t* corr;    /* bias[n] - a_zp * colsum[n] (int32, wrapping) */
    const int32_t* colsum;  /* sum_k B[k, n] (for kernels that shift A, e.g. neondot) */
    int small_weights;      /* every weight in [-64, 64] (ONNXQ_GEMM_SMALL_WEIGHTS) */
    const float* scale;     /* per column */
    const float* bias_f;    /* per column, f32 output only, NULL when absent */
    int out_type;           /* onnxq_dtype */
    int32_t out_zp;
    float lo, hi;           /* qmin - out_zp, qmax - out_zp */
    void* c;
    size_t ldc;             /* elements */
} onnxq_gemm_u8s8_ctx;

/* Rows [0, m) of C = output(A[m, k] * B + corr); returns an onnxq_status. */
typedef int onnxq_gemm_u8s8_ukernel_fn(const onnxq_gemm_u8s8_ctx* ctx, const uint8_t* a,
                                       size_t lda, size_t m);

/* Scalar store of cnt int32 accumulators of row `row` starting at column col (any ISA's tail). */
void onnxq_gemm_u8s8_store_scalar(const onnxq_gemm_u8s8_ctx* ctx, size_t row, size_t col,
                                  size_t cnt, const int32_t* acc);

/* The 4 bytes A[row, 4g .. 4g+3] as a little-endian uint32, zeros past k (never reads past k). */
static inline uint32_t onnxq_gemm_load_a4(const uint8_t* a, size_t k, size_t g) {
    const size_t k0 = 4 * g;
    if (k0 + 4 <= k) {
        uint32_t v;
        __builtin_memcpy(&v, a + k0, 4);
        return v;
    }
    uint32_t v = 0;
    for (size_t t = 0; k0 + t < k; ++t) v |= (uint32_t)a[k0 + t] << (8 * t);
    return v;
}

#endif /* ONNXQ_GEMM_UKERNEL_H */
