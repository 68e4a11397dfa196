/* Block-wise 4-bit x int8 per-row matmul of one 16-column panel, NEON dot product: per group of 8
 * values of k, four 16-byte loads (4 columns x 4 k per nibble), nibbles unpacked in registers and
 * summed by sdot (codes 0..15 as s8 x 4 replicated activation bytes, int32 per column: exact). */
#if defined(__aarch64__)
#pragma GCC target("arch=armv8.2-a+dotprod")
#include "blockwise/neon_common.h"
#include "blockwise/ukernel.h"

void onnxq_qd8_f32_qb4w_ukernel_1x16c8__neondot(size_t nb, size_t block, const int8_t* qa,
                                                 const int32_t* bsum, float a_scale,
                                                 const uint8_t* w, const float* ws,
                                                 const uint8_t* zp, float* y) {
    const uint8x16_t mask = vdupq_n_u8(0x0f);
    const float32x4_t sa = vdupq_n_f32(a_scale);
    float32x4_t yv[4];
    for (int q = 0; q < 4; ++q) yv[q] = vdupq_n_f32(0.0f);
    for (size_t b = 0; b < nb; ++b) {
        int32x4_t acc[4];
        for (int q = 0; q < 4; ++q) acc[q] = vdupq_n_s32(0);
        for (size_t g = 0; g < block / ONNXQ_QB4W_GROUP; ++g) {
            const int8x16_t alo = onnxq_qb4w_bcast4(qa), ahi = onnxq_qb4w_bcast4(qa + 4);
            for (int q = 0; q < 4; ++q) {
                const uint8x16_t wv = vld1q_u8(w + 16 * q);
                acc[q] = vdotq_s32(acc[q], vreinterpretq_s8_u8(vandq_u8(wv, mask)), alo);
                acc[q] = vdotq_s32(acc[q], vreinterpretq_s8_u8(vshrq_n_u8(wv, 4)), ahi);
            }
            w += ONNXQ_QB4W_GROUP_BYTES;
            qa += ONNXQ_QB4W_GROUP;
        }
        const int32x4_t bs = vdupq_n_s32(bsum[b]);
        const uint8_t* zb = zp != NULL ? zp + b * ONNXQ_QB4W_NR : NULL;
        for (int q = 0; q < 4; ++q) {
            const int32x4_t a = vsubq_s32(acc[q], vmulq_s32(onnxq_qb4w_zero_points(zb, q), bs));
            const float32x4_t d = vmulq_f32(sa, vld1q_f32(ws + b * ONNXQ_QB4W_NR + 4 * q));
            yv[q] = vaddq_f32(yv[q], vmulq_f32(vcvtq_f32_s32(a), d));
        }
    }
    for (int q = 0; q < 4; ++q) vst1q_f32(y + 4 * q, yv[q]);
}
#endif
