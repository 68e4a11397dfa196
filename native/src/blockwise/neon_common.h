/* Helpers of the NEON kernels of the blockwise family (neon.c, neondot.c), aarch64 only. */
#ifndef ONNXQ_BLOCKWISE_NEON_COMMON_H
#define ONNXQ_BLOCKWISE_NEON_COMMON_H

#include <arm_neon.h>
#include <stdint.h>
#include <string.h>

/* the 4 activation bytes at a, replicated to every 32-bit lane */
static inline int8x16_t onnxq_qb4w_bcast4(const int8_t* a) {
    int32_t v;
    memcpy(&v, a, sizeof v);
    return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

/* the zero points of columns 4q .. 4q + 3 of one block's row zb of 16 (NULL: every one 8) */
static inline int32x4_t onnxq_qb4w_zero_points(const uint8_t* zb, int q) {
    if (zb == NULL) return vdupq_n_s32(8);
    const uint8x16_t z = vld1q_u8(zb);
    const uint16x8_t h = q < 2 ? vmovl_u8(vget_low_u8(z)) : vmovl_u8(vget_high_u8(z));
    const uint32x4_t v = (q & 1) == 0 ? vmovl_u16(vget_low_u16(h)) : vmovl_u16(vget_high_u16(h));
    return vreinterpretq_s32_u32(v);
}

#endif /* ONNXQ_BLOCKWISE_NEON_COMMON_H */
