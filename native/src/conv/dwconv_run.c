/* Depthwise drivers: per-pixel tap pointers (indirection) for the dwconv kernels, and quad rows
 * (a ring of repacked input rows) for the dwrow kernels. */
#include <stdint.h>
#include <string.h>

#include "common/internal.h"
#include "conv/conv_internal.h"
#include "onnxq/conv.h"

/* Depthwise scratch: tap pointers, then a row of x_zp, then the two folded bias arrays. */
size_t onnxq_dw_scratch_layout(size_t taps, size_t channels, size_t* zrow, size_t* bias,
                                size_t* bias_eo) {
    const size_t cpad = onnxq_round_up(channels, ONNXQ_DW_BLOCK);
    *zrow = onnxq_round_up(taps * sizeof(void*), ONNXQ_CONV_ALIGN);
    *bias = *zrow + onnxq_round_up(channels, ONNXQ_CONV_ALIGN);
    *bias_eo = *bias + 4 * cpad;
    return *bias_eo + 4 * cpad;
}

void onnxq_conv_run_depthwise(conv_worker* w) {
    const onnxq_conv_job_plan* plan = w->plan;
    const onnxq_conv_params* p = plan->p;
    const onnxq_conv_packed* h = plan->packed;
    const uint8_t* base = plan->packed;
    const size_t kh = p->w.kernel_h, kw = p->w.kernel_w, taps = kh * kw, c = p->w.in_c;
    size_t zrow_off, bias_off, bias_eo_off;
    onnxq_dw_scratch_layout(taps, c, &zrow_off, &bias_off, &bias_eo_off);
    const uint8_t** ptrs = (const uint8_t**)(void*)w->scratch;
    uint8_t* zrow = w->scratch + zrow_off;
    int32_t* bias = (int32_t*)(void*)(w->scratch + bias_off);
    int32_t* bias_eo = (int32_t*)(void*)(w->scratch + bias_eo_off);
    memset(zrow, p->x_zp, c);
    memset(bias_eo, 0, 4 * onnxq_round_up(c, ONNXQ_DW_BLOCK));
    const int32_t* packed_bias = (const int32_t*)(const void*)(base + h->bias_off);
    const int32_t* wsum = (const int32_t*)(const void*)(base + h->wsum_off);
    for (size_t ch = 0; ch < c; ch++) { /* fold x_zp: bias - x_zp * sum(w), wrapping */
        bias[ch] = (int32_t)((uint32_t)packed_bias[ch] - (uint32_t)p->x_zp * (uint32_t)wsum[ch]);
        bias_eo[onnxq_dw_eo_index(ch)] = bias[ch];
    }
    const onnxq_dw_args args = {
        .channels = c,
        .taps = taps,
        .weights = (const int16_t*)(const void*)(base + h->weights_off),
        .tap_stride = h->group_stride,
        .bias = bias,
        .bias_eo = bias_eo,
        .scale = (const float*)(const void*)(base + h->scale_off),
        .scale_eo = (const float*)(const void*)(base + h->scale_eo_off),
        .y_zp = p->y_zp,
        .lo = (float)((int32_t)p->qmin - (int32_t)p->y_zp),
        .hi = (float)((int32_t)p->qmax - (int32_t)p->y_zp),
    };
    const size_t hw = plan->out_h * plan->out_w;
    const size_t span_h = (kh - 1) * p->dilation_h, span_w = (kw - 1) * p->dilation_w;
    for (size_t r = w->r0; r < w->r1; r++) {
        const size_t n = r / hw, oy = (r % hw) / plan->out_w, ox = r % plan->out_w;
        const uint8_t* img = plan->x + n * p->in_h * p->in_w * c;
        /* ih0 / iw0 may be "negative": unsigned wrap-around makes them >= in_h / in_w. */
        const size_t ih0 = oy * p->stride_h - p->pad_top, iw0 = ox * p->stride_w - p->pad_left;
        if (ih0 < p->in_h && ih0 + span_h < p->in_h && iw0 < p->in_w && iw0 + span_w < p->in_w) {
            const uint8_t* px = img + (ih0 * p->in_w + iw0) * c; /* interior: no padding tap */
            for (size_t i = 0; i < kh; i++) {
                for (size_t j = 0; j < kw; j++) {
                    ptrs[i * kw + j] = px + (i * p->dilation_h * p->in_w + j * p->dilation_w) * c;
                }
            }
        } else {
            for (size_t i = 0; i < kh; i++) {
                const size_t ih = ih0 + i * p->dilation_h;
                for (size_t j = 0; j < kw; j++) {
                    const size_t iw = iw0 + j * p->dilation_w;
                    ptrs[i * kw + j] = ih < p->in_h && iw < p->in_w ? img + (ih * p->in_w + iw) * c
                                                                    : zrow;
                }
            }
        }
        plan->dw(&args, ptrs, plan->y + r * c);
    }
}

/* Depthwise-by-rows scratch: pointers for one quad row, a row of x_zp, the folded bias, then
 * kernel_h + 1 quad rows (a ring keyed by input row, plus one all-padding row). */
size_t onnxq_dwrow_scratch_layout(const onnxq_conv_params* p, size_t out_w, size_t* zrow,
                                   size_t* bias, size_t* rows, size_t* row_bytes) {
    const size_t c = p->w.in_c, cpad = onnxq_round_up(c, ONNXQ_DWROW_CHANNELS);
    *zrow = onnxq_round_up(4 * out_w * sizeof(void*), ONNXQ_CONV_ALIGN);
    *bias = *zrow + onnxq_round_up(c, ONNXQ_CONV_ALIGN);
    *rows = *bias + onnxq_round_up(4 * cpad, ONNXQ_CONV_ALIGN);
    *row_bytes = onnxq_round_up(out_w * cpad * 4, ONNXQ_CONV_ALIGN);
    return *rows + (p->w.kernel_h + 1) * *row_bytes;
}

/* Quad row of input row ih of image img (ih >= in_h: the padding row). */
static void build_quad_row(const conv_worker* w, const uint8_t* img, size_t ih,
                           const uint8_t** ptrs, const uint8_t* zrow, uint8_t* q) {
    const onnxq_conv_params* p = w->plan->p;
    const size_t c = p->w.in_c, out_w = w->plan->out_w;
    for (size_t ox = 0; ox < out_w; ox++) {
        for (size_t j = 0; j < 4; j++) {
            const size_t iw = ox * p->stride_w + j - p->pad_left; /* wraps if < 0 */
            ptrs[4 * ox + j] =
                ih < p->in_h && j < p->w.kernel_w && iw < p->in_w ? img + (ih * p->in_w + iw) * c
                                                                  : zrow;
        }
    }
    w->plan->dwrowpack(c, onnxq_round_up(c, ONNXQ_DWROW_CHANNELS), ptrs, out_w, q);
}

void onnxq_conv_run_depthwise_rows(conv_worker* w) {
    const onnxq_conv_job_plan* plan = w->plan;
    const onnxq_conv_params* p = plan->p;
    const onnxq_conv_packed* h = plan->packed;
    const uint8_t* base = plan->packed;
    const size_t c = p->w.in_c, kh = p->w.kernel_h, out_w = plan->out_w;
    const size_t cpad = onnxq_round_up(c, ONNXQ_DWROW_CHANNELS);
    size_t zrow_off, bias_off, rows_off, row_bytes;
    onnxq_dwrow_scratch_layout(p, out_w, &zrow_off, &bias_off, &rows_off, &row_bytes);
    const uint8_t** ptrs = (const uint8_t**)(void*)w->scratch;
    uint8_t* zrow = w->scratch + zrow_off;
    int32_t* bias = (int32_t*)(void*)(w->scratch + bias_off);
    uint8_t* ring = w->scratch + rows_off;
    uint8_t* pad_row = ring + kh * row_bytes;
    memset(zrow, p->x_zp, c);
    memset(bias, 0, 4 * cpad);
    const int32_t* packed_bias = (const int32_t*)(const void*)(base + h->bias_off);
    const int32_t* wsum = (const int32_t*)(const void*)(base + h->wsum_off);
    for (size_t ch = 0; ch < c; ch++) { /* fold x_zp: bias - x_zp * sum(w), wrapping */
        bias[ch] = (int32_t)((uint32_t)packed_bias[ch] - (uint32_t)p->x_zp * (uint32_t)wsum[ch]);
    }
    build_quad_row(w, plan->x, SIZE_MAX, ptrs, zrow, pad_row);
    size_t keys[ONNXQ_CONV_MAX_DWROW_KH]; /* image * in_h + ih held by each ring slot */
    for (size_t i = 0; i < kh; i++) keys[i] = SIZE_MAX;
    const onnxq_dwrow_args args = {
        .channels = c, .cpad = cpad, .kernel_h = kh,
        .weights = (const int8_t*)(const void*)(base + h->quad_off),
        .bias = bias,
        .scale = (const float*)(const void*)(base + h->scale_off),
        .y_zp = p->y_zp,
        .lo = (float)((int32_t)p->qmin - (int32_t)p->y_zp),
        .hi = (float)((int32_t)p->qmax - (int32_t)p->y_zp),
    };
    const uint8_t* qrows[ONNXQ_CONV_MAX_DWROW_KH];
    const size_t hw = plan->out_h * out_w;
    for (size_t r = w->r0; r < w->r1;) {
        const size_t n = r / hw, oy = (r % hw) / out_w, ox0 = r % out_w;
        const size_t count = out_w - ox0 < w->r1 - r ? out_w - ox0 : w->r1 - r;
        const uint8_t* img = plan->x + n * p->in_h * p->in_w * c;
        for (size_t i = 0; i < kh; i++) {
            const size_t ih = oy + i - p->pad_top; /* stride_h = dilation_h = 1; wraps if < 0 */
            uint8_t* q = pad_row;
            if (ih < p->in_h) {
                const size_t slot = ih % kh, key = n * p->in_h + ih;
                q = ring + slot * row_bytes;
                if (keys[slot] != key) {
                    build_quad_row(w, img, ih, ptrs, zrow, q);
                    keys[slot] = key;
                }
            }
            qrows[i] = q + ox0 * cpad * 4;
        }
        plan->dwrow(&args, qrows, count, plan->y + r * c);
        r += count;
    }
}
