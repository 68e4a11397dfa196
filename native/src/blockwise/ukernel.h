/* Micro-kernel type of the blockwise family (4-bit weights per block, int8 activations per row).
 *
 * Packed panel layout (the same on every ISA; onnxq_qb4w_pack writes it): the columns are taken 16
 * at a time (a panel; the last padded with zero codes and scales), and a panel's codes 8 values of
 * k at a time (a group, 64 bytes). In group g, byte 32 * h + 4 * c + j (h in {0, 1}, c < 8, j < 4)
 * holds column 8 * h + c: value k = 8 * g + j in its low nibble and k = 8 * g + 4 + j in its high
 * nibble. So a 32-byte half is 8 columns x 4 consecutive k per nibble, as vpmaddubsw / vpdpbusd
 * pair them with 4 broadcast activation bytes, and a 16-byte quarter q is columns 4q .. 4q + 3.
 * Scales: [nb][16] fp32 per panel; zero points (when present): [nb][16] bytes per panel.
 */
#ifndef ONNXQ_BLOCKWISE_UKERNEL_H
#define ONNXQ_BLOCKWISE_UKERNEL_H

#include <stddef.h>
#include <stdint.h>

enum { ONNXQ_QB4W_NR = 16, ONNXQ_QB4W_GROUP = 8, ONNXQ_QB4W_GROUP_BYTES = 64 };

/* y[0 .. 16) = the 16 columns of one panel for one quantized row (onnxq/blockwise.h's arithmetic):
 * nb blocks of `block` values (a multiple of 32); qa [nb * block] int8, bsum [nb], a_scale the
 * row's scale; w the panel's nb * block / 8 groups, ws its [nb][16] scales, zp its [nb][16] zero
 * points or NULL (every one 8). No bias. */
typedef void onnxq_qd8_f32_qb4w_ukernel_fn(size_t nb, size_t block, const int8_t* qa,
                                           const int32_t* bsum, float a_scale, const uint8_t* w,
                                           const float* ws, const uint8_t* zp, float* y);

#endif /* ONNXQ_BLOCKWISE_UKERNEL_H */
