/* im2col of a block of output rows (never the whole image): row r of the block holds, for output
 * pixel m0 + r, the group's channels of every tap in (kh, kw, c) order; padding taps hold x_zp.
 * With dilation_w == 1 and all groups' channels wanted, the kw taps of one kernel row are
 * kw * C contiguous input bytes, copied at once when the whole kernel row lies inside. */
#include <string.h>

#include "conv/conv_internal.h"

/* Exactly n bytes, without calls for n <= 64: two overlapping fixed-size copies. */
static inline void copy_bytes(uint8_t* dst, const uint8_t* src, size_t n) {
    if (n >= 32 && n <= 64) {
        memcpy(dst, src, 32);
        memcpy(dst + n - 32, src + n - 32, 32);
    } else if (n >= 16 && n < 32) {
        memcpy(dst, src, 16);
        memcpy(dst + n - 16, src + n - 16, 16);
    } else if (n >= 8 && n < 16) {
        memcpy(dst, src, 8);
        memcpy(dst + n - 8, src + n - 8, 8);
    } else if (n >= 4 && n < 8) {
        memcpy(dst, src, 4);
        memcpy(dst + n - 4, src + n - 4, 4);
    } else if (n < 4) {
        for (size_t i = 0; i < n; i++) dst[i] = src[i];
    } else {
        memcpy(dst, src, n);
    }
}

void onnxq_conv_im2col_rows(const onnxq_im2col_geom* g, const uint8_t* x_image, size_t c0,
                            size_t m0, size_t m, uint8_t x_zp, uint8_t* a) {
    const size_t gc = g->group_c;
    const size_t k = g->kernel_h * g->kernel_w * gc;
    const int whole_rows = g->dilation_w == 1 && gc == g->in_c;
    const size_t row_bytes = g->kernel_w * gc;
    size_t oh = m0 / g->out_w;
    size_t ow = m0 % g->out_w;
    for (size_t r = 0; r < m; r++) {
        uint8_t* row = a + r * k;
        /* iw0 may be "negative": unsigned wrap-around makes it >= in_w, i.e. padding. */
        const size_t iw0 = ow * g->stride_w - g->pad_left;
        const int inside_w = iw0 < g->in_w && iw0 + g->kernel_w <= g->in_w;
        for (size_t i = 0; i < g->kernel_h; i++) {
            const size_t ih = oh * g->stride_h + i * g->dilation_h - g->pad_top;
            uint8_t* dst = row + i * row_bytes;
            if (ih >= g->in_h) {
                memset(dst, x_zp, row_bytes);
                continue;
            }
            const uint8_t* src_row = x_image + ih * g->in_w * g->in_c + c0;
            if (whole_rows && inside_w) {
                copy_bytes(dst, src_row + iw0 * g->in_c, row_bytes);
                continue;
            }
            for (size_t j = 0; j < g->kernel_w; j++) {
                const size_t iw = iw0 + j * g->dilation_w;
                if (iw < g->in_w) {
                    copy_bytes(dst + j * gc, src_row + iw * g->in_c, gc);
                } else {
                    memset(dst + j * gc, x_zp, gc);
                }
            }
        }
        if (++ow == g->out_w) {
            ow = 0;
            oh++;
        }
    }
}
