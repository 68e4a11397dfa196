/* Block-wise 4-bit x int8 per-row matmul of one 16-column panel, portable C: the oracle's twin. */
#include <stdint.h>

#include "blockwise/ukernel.h"

void onnxq_qd8_f32_qb4w_ukernel_1x16c8__scalar(size_t nb, size_t block, const int8_t* qa,
                                                const int32_t* bsum, float a_scale,
                                                const uint8_t* w, const float* ws,
                                                const uint8_t* zp, float* y) {
    const size_t groups = block / ONNXQ_QB4W_GROUP;
    for (size_t c = 0; c < ONNXQ_QB4W_NR; ++c) y[c] = 0.0f;
    for (size_t b = 0; b < nb; ++b) {
        const uint8_t* wb = w + b * groups * ONNXQ_QB4W_GROUP_BYTES;
        const int8_t* ab = qa + b * block;
        for (size_t c = 0; c < ONNXQ_QB4W_NR; ++c) {
            const size_t col = (c / 8) * 32 + (c % 8) * 4;
            int32_t dot = 0; /* |dot| <= 15 * 128 * 65536 < 2^31 */
            for (size_t g = 0; g < groups; ++g) {
                const uint8_t* wg = wb + g * ONNXQ_QB4W_GROUP_BYTES + col;
                const int8_t* ag = ab + g * ONNXQ_QB4W_GROUP;
                for (size_t j = 0; j < 4; ++j) {
                    dot += (int32_t)(wg[j] & 0x0f) * ag[j];
                    dot += (int32_t)(wg[j] >> 4) * ag[4 + j];
                }
            }
            const uint32_t z = zp != NULL ? zp[b * ONNXQ_QB4W_NR + c] : 8u;
            const int32_t acc = (int32_t)((uint32_t)dot - z * (uint32_t)bsum[b]);
            const float d = a_scale * ws[b * ONNXQ_QB4W_NR + c];
            y[c] = y[c] + (float)acc * d;
        }
    }
}
