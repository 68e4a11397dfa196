/* Block-wise 4-bit x int8 per-row matmul of one 16-column panel, NEON (aarch64): per group of 8
 * values of k, four 16-byte loads (4 columns x 4 k per nibble each), nibbles unpacked in registers
 * (and / shift), smull + smlal of codes (0..15, as s8) by 4 replicated activation bytes into int16
 * (two products: at most 3840 in magnitude), sadalp into int32 (two lanes per column, added
 * pairwise at the end of each block). */
#if defined(__aarch64__)
#include "blockwise/neon_common.h"
#include "blockwise/ukernel.h"

void onnxq_qd8_f32_qb4w_ukernel_1x16c8__neon(size_t nb, size_t block, const int8_t* qa,
                                              const int32_t* bsum, float a_scale,
                                              const uint8_t* w, const float* ws,
                                              const uint8_t* zp, float* y) {
    const uint8x16_t mask = vdupq_n_u8(0x0f);
    const float32x4_t sa = vdupq_n_f32(a_scale);
    float32x4_t yv[4];
    for (int q = 0; q < 4; ++q) yv[q] = vdupq_n_f32(0.0f);
    for (size_t b = 0; b < nb; ++b) {
        int32x4_t acc_a[4], acc_b[4];
        for (int q = 0; q < 4; ++q) acc_a[q] = acc_b[q] = vdupq_n_s32(0);
        for (size_t g = 0; g < block / ONNXQ_QB4W_GROUP; ++g) {
            const int8x16_t alo = onnxq_qb4w_bcast4(qa), ahi = onnxq_qb4w_bcast4(qa + 4);
            for (int q = 0; q < 4; ++q) {
                const uint8x16_t wv = vld1q_u8(w + 16 * q);
                const int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(wv, mask));
                const int8x16_t hi = vreinterpretq_s8_u8(vshrq_n_u8(wv, 4));
                int16x8_t pa = vmull_s8(vget_low_s8(lo), vget_low_s8(alo));
                pa = vmlal_s8(pa, vget_low_s8(hi), vget_low_s8(ahi));
                int16x8_t pb = vmull_high_s8(lo, alo);
                pb = vmlal_high_s8(pb, hi, ahi);
                acc_a[q] = vpadalq_s16(acc_a[q], pa);
                acc_b[q] = vpadalq_s16(acc_b[q], pb);
            }
            w += ONNXQ_QB4W_GROUP_BYTES;
            qa += ONNXQ_QB4W_GROUP;
        }
        const int32x4_t bs = vdupq_n_s32(bsum[b]);
        const uint8_t* zb = zp != NULL ? zp + b * ONNXQ_QB4W_NR : NULL;
        for (int q = 0; q < 4; ++q) {
            int32x4_t acc = vpaddq_s32(acc_a[q], acc_b[q]); /* columns 4q .. 4q + 3 */
            acc = vsubq_s32(acc, vmulq_s32(onnxq_qb4w_zero_points(zb, q), bs));
            const float32x4_t d = vmulq_f32(sa, vld1q_f32(ws + b * ONNXQ_QB4W_NR + 4 * q));
            yv[q] = vaddq_f32(yv[q], vmulq_f32(vcvtq_f32_s32(acc), d));
        }
    }
    for (int q = 0; q < 4; ++q) vst1q_f32(y + 4 * q, yv[q]);
}
#endif
