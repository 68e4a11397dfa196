/* im2col of a block of output rows (never the whole image): row r of the block holds, for output
 * pixel m0 + r, the group's channels of every tap in (kh, kw, c) order; padding taps hold x_zp.
 * With dilation_w == 1 and all groups' channels wanted, the kw taps of one kernel row are
 * kw * C contiguous input bytes, copied at once when the whole kernel row lies inside. */
#include <string.h>

#include "conv/conv_internal.h"

/* Exactly n bytes, without calls for n <= 128: two overlapping fixed-size copies. */
static inline void copy_bytes(uint8_t* dst, const uint8_t* src, size_t n) {
    if (n > 64 && n <= 128) {
        memcpy(dst, src, 64);
        memcpy(dst + n - 64, src + n - 64, 64);
    } else if (n >= 32 && n <= 64) {
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
    /* The geometry in locals: stores through a (uint8_t) may alias *g, so the compiler would
     * reload every field after every copy. */
    const size_t gc = g->group_c, in_h = g->in_h, in_w = g->in_w, in_c = g->in_c;
    const size_t out_w = g->out_w, kh = g->kernel_h, kw = g->kernel_w;
    const size_t stride_h = g->stride_h, stride_w = g->stride_w;
    const size_t dil_h = g->dilation_h, dil_w = g->dilation_w;
    const size_t pad_top = g->pad_top, pad_left = g->pad_left;
    const size_t k = kh * kw * gc;
    const int whole_rows = dil_w == 1 && gc == in_c;
    const size_t row_bytes = kw * gc;
    size_t oh = m0 / out_w;
    size_t ow = m0 % out_w;
    for (size_t r = 0; r < m; r++) {
        uint8_t* row = a + r * k;
        /* iw0 may be "negative": unsigned wrap-around makes it >= in_w, i.e. padding. */
        const size_t iw0 = ow * stride_w - pad_left;
        const int inside_w = iw0 < in_w && iw0 + kw <= in_w;
        const size_t ih0 = oh * stride_h - pad_top;
        if (whole_rows && inside_w && ih0 < in_h && ih0 + (kh - 1) * dil_h < in_h) {
            /* the whole window inside the image: kh copies of kw * C bytes */
            const uint8_t* src = x_image + (ih0 * in_w + iw0) * in_c + c0;
            for (size_t i = 0; i < kh; i++) {
                copy_bytes(row + i * row_bytes, src + i * dil_h * in_w * in_c, row_bytes);
            }
        } else {
            for (size_t i = 0; i < kh; i++) {
                const size_t ih = ih0 + i * dil_h;
                uint8_t* dst = row + i * row_bytes;
                if (ih >= in_h) {
                    memset(dst, x_zp, row_bytes);
                    continue;
                }
                const uint8_t* src_row = x_image + ih * in_w * in_c + c0;
                if (whole_rows && inside_w) {
                    copy_bytes(dst, src_row + iw0 * in_c, row_bytes);
                    continue;
                }
                for (size_t j = 0; j < kw; j++) {
                    const size_t iw = iw0 + j * dil_w;
                    if (iw < in_w) {
                        copy_bytes(dst + j * gc, src_row + iw * in_c, gc);
                    } else {
                        memset(dst + j * gc, x_zp, gc);
                    }
                }
            }
        }
        if (++ow == out_w) {
            ow = 0;
            oh++;
        }
    }
}
