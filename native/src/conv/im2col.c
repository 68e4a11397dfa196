/* im2col of a block of output rows (never the whole image): row r of the block holds, for output
 * pixel m0 + r, the group's channels of every tap in (kh, kw, c) order; padding taps hold x_zp. */
#include <string.h>

#include "conv_internal.h"

void onnxq_conv_im2col_rows(const onnxq_im2col_geom* g, const uint8_t* x_image, size_t c0,
                            size_t m0, size_t m, uint8_t x_zp, uint8_t* a) {
    const size_t k = g->kernel_h * g->kernel_w * g->group_c;
    size_t oh = m0 / g->out_w;
    size_t ow = m0 % g->out_w;
    for (size_t r = 0; r < m; r++) {
        uint8_t* row = a + r * k;
        for (size_t i = 0; i < g->kernel_h; i++) {
            /* ih may be "negative": unsigned wrap-around makes it >= in_h, i.e. padding. */
            const size_t ih = oh * g->stride_h + i * g->dilation_h - g->pad_top;
            for (size_t j = 0; j < g->kernel_w; j++) {
                const size_t iw = ow * g->stride_w + j * g->dilation_w - g->pad_left;
                uint8_t* dst = row + (i * g->kernel_w + j) * g->group_c;
                if (ih < g->in_h && iw < g->in_w) {
                    memcpy(dst, x_image + (ih * g->in_w + iw) * g->in_c + c0, g->group_c);
                } else {
                    memset(dst, x_zp, g->group_c);
                }
            }
        }
        if (++ow == g->out_w) {
            ow = 0;
            oh++;
        }
    }
}
