/* Pooling entry points: validation, the indirection list of valid taps per output pixel, then the
 * selected micro-kernel. */
#include <math.h>
#include <stdlib.h>

#include "common/internal.h"
#include "onnxq/pool.h"
#include "onnxq_kernels.h"

/* Output extent of one axis; 0 with *ok = 0 when the kernel exceeds the padded input. */
static size_t out_extent(size_t in, size_t k, size_t s, size_t d, size_t pb, size_t pe, int ceil_mode,
                         int* ok) {
    size_t eff, padded;
    *ok = 0;
    if (onnxq_mul_overflow(d, k - 1, &eff) || eff == SIZE_MAX) return 0;
    eff += 1;
    padded = in + pb;
    if (padded < in || padded + pe < padded) return 0;
    padded += pe;
    if (padded < eff) return 0;
    *ok = 1;
    const size_t span = padded - eff;
    if (!ceil_mode) return span / s + 1;
    size_t out = span / s + (span % s != 0) + 1;
    /* the last window must start inside the image or its leading padding: (out-1)*s < in + pb */
    const size_t start_limit = (in + pb) / s + ((in + pb) % s != 0);
    if (out - 1 >= start_limit) out -= 1;
    return out;
}

static int check_common(const onnxq_pool_params* p, const void* x, const void* y,
                        const char* what) {
    ONNXQ_CHECK_NOT_NULL(p, "params");
    ONNXQ_CHECK_NOT_NULL(x, "x");
    ONNXQ_CHECK_NOT_NULL(y, "y");
    if (p->qtype != ONNXQ_U8 && p->qtype != ONNXQ_S8)
        return onnxq_error(ONNXQ_E_ARG, "%s: qtype must be u8 or s8, got %d", what, p->qtype);
    if (p->batch == 0 || p->in_h == 0 || p->in_w == 0 || p->channels == 0)
        return onnxq_error(ONNXQ_E_SHAPE, "%s: zero-size input (batch=%zu, h=%zu, w=%zu, c=%zu)",
                           what, p->batch, p->in_h, p->in_w, p->channels);
    size_t total;
    if (onnxq_mul_overflow(p->batch, p->in_h, &total) ||
        onnxq_mul_overflow(total, p->in_w, &total) ||
        onnxq_mul_overflow(total, p->channels, &total) || total > (SIZE_MAX >> 4))
        return onnxq_error(ONNXQ_E_SHAPE, "%s: input size overflows", what);
    return ONNXQ_OK;
}

static int check_window(const onnxq_pool_params* p, const char* what, size_t* oh, size_t* ow) {
    if (p->kernel_h == 0 || p->kernel_w == 0)
        return onnxq_error(ONNXQ_E_ARG, "%s: kernel %zux%zu, expected both >= 1", what, p->kernel_h,
                           p->kernel_w);
    if (p->stride_h == 0 || p->stride_w == 0 || p->dilation_h == 0 || p->dilation_w == 0)
        return onnxq_error(ONNXQ_E_ARG, "%s: strides (%zu, %zu) and dilations (%zu, %zu) must be >= 1",
                           what, p->stride_h, p->stride_w, p->dilation_h, p->dilation_w);
    int ok_h, ok_w;
    *oh = out_extent(p->in_h, p->kernel_h, p->stride_h, p->dilation_h, p->pad_top, p->pad_bottom,
                     p->ceil_mode, &ok_h);
    *ow = out_extent(p->in_w, p->kernel_w, p->stride_w, p->dilation_w, p->pad_left, p->pad_right,
                     p->ceil_mode, &ok_w);
    if (!ok_h || !ok_w)
        return onnxq_error(ONNXQ_E_SHAPE,
                           "%s: kernel %zux%zu (dilation %zux%zu) is larger than the padded input "
                           "%zux%zu (pads %zu,%zu,%zu,%zu)", what, p->kernel_h, p->kernel_w,
                           p->dilation_h, p->dilation_w, p->in_h, p->in_w, p->pad_top, p->pad_left,
                           p->pad_bottom, p->pad_right);
    size_t taps;
    if (onnxq_mul_overflow(p->kernel_h, p->kernel_w, &taps) || taps > ((size_t)1 << 24))
        return onnxq_error(ONNXQ_E_SHAPE, "%s: kernel %zux%zu has too many taps", what, p->kernel_h,
                           p->kernel_w);
    return ONNXQ_OK;
}

static int check_quant(const onnxq_pool_params* p, const char* what) {
    const int32_t tmin = p->qtype == ONNXQ_U8 ? 0 : -128, tmax = p->qtype == ONNXQ_U8 ? 255 : 127;
    if (!(p->x_scale > 0.0f) || !isfinite(p->x_scale) || !(p->y_scale > 0.0f) ||
        !isfinite(p->y_scale))
        return onnxq_error(ONNXQ_E_ARG, "%s: x_scale = %g, y_scale = %g, expected finite values > 0",
                           what, (double)p->x_scale, (double)p->y_scale);
    if (p->x_zp < tmin || p->x_zp > tmax || p->y_zp < tmin || p->y_zp > tmax)
        return onnxq_error(ONNXQ_E_ARG, "%s: zero points (%d, %d), expected %d..%d", what,
                           (int)p->x_zp, (int)p->y_zp, (int)tmin, (int)tmax);
    return ONNXQ_OK;
}

int onnxq_pool_output_size(const onnxq_pool_params* p, size_t* out_h, size_t* out_w) {
    ONNXQ_CHECK_NOT_NULL(p, "params");
    ONNXQ_CHECK_NOT_NULL(out_h, "out_h");
    ONNXQ_CHECK_NOT_NULL(out_w, "out_w");
    return check_window(p, "pool", out_h, out_w);
}

static int check_lengths(const char* what, size_t x_len, size_t x_need, size_t y_len,
                         size_t y_need) {
    if (x_len != x_need)
        return onnxq_error(ONNXQ_E_SHAPE, "%s: x has %zu elements, expected %zu", what, x_len, x_need);
    if (y_len != y_need)
        return onnxq_error(ONNXQ_E_SHAPE, "%s: y has %zu elements, expected %zu", what, y_len, y_need);
    return ONNXQ_OK;
}

typedef void pixel_fn(const void* fn, size_t channels, size_t ntaps, const uint8_t* const* taps,
                      uint8_t* y, const onnxq_avgpool_ukernel_params* ap);

static void max_u8(const void* fn, size_t c, size_t n, const uint8_t* const* t, uint8_t* y,
                   const onnxq_avgpool_ukernel_params* ap) {
    (void)ap;
    ((onnxq_maxpool_u8_ukernel_fn*)fn)(c, n, t, y);
}
static void max_s8(const void* fn, size_t c, size_t n, const uint8_t* const* t, uint8_t* y,
                   const onnxq_avgpool_ukernel_params* ap) {
    (void)ap;
    ((onnxq_maxpool_s8_ukernel_fn*)fn)(c, n, (const int8_t* const*)t, (int8_t*)y);
}
static void avg_u8(const void* fn, size_t c, size_t n, const uint8_t* const* t, uint8_t* y,
                   const onnxq_avgpool_ukernel_params* ap) {
    ((onnxq_avgpool_u8_ukernel_fn*)fn)(c, n, t, y, ap);
}
static void avg_s8(const void* fn, size_t c, size_t n, const uint8_t* const* t, uint8_t* y,
                   const onnxq_avgpool_ukernel_params* ap) {
    ((onnxq_avgpool_s8_ukernel_fn*)fn)(c, n, (const int8_t* const*)t, (int8_t*)y, ap);
}

/* Walks every output pixel, collecting its valid taps (row-major window order). */
static int run_windows(const onnxq_pool_params* p, size_t oh, size_t ow, const uint8_t* x,
                       uint8_t* y, const void* fn, pixel_fn* pix, int is_avg,
                       onnxq_avgpool_ukernel_params* ap, const char* what) {
    const size_t ntaps_max = p->kernel_h * p->kernel_w, C = p->channels;
    const uint8_t** taps = (const uint8_t**)malloc(ntaps_max * sizeof *taps);
    if (taps == NULL) return onnxq_error(ONNXQ_E_NOMEM, "%s: cannot allocate %zu tap pointers", what,
                                         ntaps_max);
    const uint8_t type_min = p->qtype == ONNXQ_U8 ? (uint8_t)0 : (uint8_t)0x80;
    for (size_t n = 0; n < p->batch; ++n) {
        const uint8_t* xn = x + n * p->in_h * p->in_w * C;
        for (size_t i = 0; i < oh; ++i) {
            for (size_t j = 0; j < ow; ++j) {
                size_t nt = 0;
                for (size_t kh = 0; kh < p->kernel_h; ++kh) {
                    /* ih = i * stride - pad_top + kh * dilation, skipped when outside [0, in_h) */
                    const size_t pos = i * p->stride_h + kh * p->dilation_h;
                    if (pos < p->pad_top || pos - p->pad_top >= p->in_h) continue;
                    const size_t ih = pos - p->pad_top;
                    for (size_t kw = 0; kw < p->kernel_w; ++kw) {
                        const size_t posw = j * p->stride_w + kw * p->dilation_w;
                        if (posw < p->pad_left || posw - p->pad_left >= p->in_w) continue;
                        taps[nt++] = xn + (ih * p->in_w + (posw - p->pad_left)) * C;
                    }
                }
                uint8_t* yp = y + ((n * oh + i) * ow + j) * C;
                if (is_avg) {
                    const size_t cnt = p->count_include_pad ? ntaps_max : nt;
                    ap->count = (float)(cnt == 0 ? 1 : cnt);
                    pix(fn, C, nt, taps, yp, ap);
                } else if (nt == 0) {
                    for (size_t c = 0; c < C; ++c) yp[c] = type_min;
                } else {
                    pix(fn, C, nt, taps, yp, ap);
                }
            }
        }
    }
    free(taps);
    return ONNXQ_OK;
}

int onnxq_maxpool(const onnxq_pool_params* p, const void* x, size_t x_len, void* y, size_t y_len) {
    int st = check_common(p, x, y, "maxpool");
    if (st != ONNXQ_OK) return st;
    size_t oh, ow;
    if ((st = check_window(p, "maxpool", &oh, &ow)) != ONNXQ_OK) return st;
    const size_t x_need = p->batch * p->in_h * p->in_w * p->channels;
    size_t y_need;
    if (onnxq_mul_overflow(p->batch * p->channels, oh, &y_need) ||
        onnxq_mul_overflow(y_need, ow, &y_need))
        return onnxq_error(ONNXQ_E_SHAPE, "maxpool: output size overflows");
    if ((st = check_lengths("maxpool", x_len, x_need, y_len, y_need)) != ONNXQ_OK) return st;
    if ((st = onnxq_isa_check()) != ONNXQ_OK) return st;
    const void* fn;
    pixel_fn* pix;
    if (p->qtype == ONNXQ_U8) {
        const onnxq_maxpool_u8_entry* e = onnxq_maxpool_u8_select();
        if (e == NULL) return onnxq_isa_check();
        fn = (const void*)e->fn;
        pix = max_u8;
    } else {
        const onnxq_maxpool_s8_entry* e = onnxq_maxpool_s8_select();
        if (e == NULL) return onnxq_isa_check();
        fn = (const void*)e->fn;
        pix = max_s8;
    }
    return run_windows(p, oh, ow, (const uint8_t*)x, (uint8_t*)y, fn, pix, 0, NULL, "maxpool");
}

static int global_run(const onnxq_pool_params* p, const void* x, void* y) {
    const size_t rows = p->in_h * p->in_w, C = p->channels;
    const int32_t tmin = p->qtype == ONNXQ_U8 ? 0 : -128, tmax = p->qtype == ONNXQ_U8 ? 255 : 127;
    onnxq_gavgpool_ukernel_params gp;
    gp.bias = -p->x_zp * (int32_t)rows;
    gp.multiplier = p->x_scale / (p->y_scale * (float)rows);
    gp.lo = (float)(tmin - p->y_zp);
    gp.hi = (float)(tmax - p->y_zp);
    gp.y_zp = p->y_zp;
    if (p->qtype == ONNXQ_U8) {
        const onnxq_gavgpool_u8_entry* e = onnxq_gavgpool_u8_select();
        if (e == NULL) return onnxq_isa_check();
        for (size_t n = 0; n < p->batch; ++n)
            e->fn(C, rows, (const uint8_t*)x + n * rows * C, C, (uint8_t*)y + n * C, &gp);
    } else {
        const onnxq_gavgpool_s8_entry* e = onnxq_gavgpool_s8_select();
        if (e == NULL) return onnxq_isa_check();
        for (size_t n = 0; n < p->batch; ++n)
            e->fn(C, rows, (const int8_t*)x + n * rows * C, C, (int8_t*)y + n * C, &gp);
    }
    return ONNXQ_OK;
}

static int check_global_size(const onnxq_pool_params* p, const char* what) {
    if (p->in_h * p->in_w >= ((size_t)1 << 24))
        return onnxq_error(ONNXQ_E_SHAPE, "%s: image of %zux%zu pixels is too large (< 2^24 expected)",
                           what, p->in_h, p->in_w);
    return ONNXQ_OK;
}

int onnxq_global_avgpool(const onnxq_pool_params* p, const void* x, size_t x_len, void* y,
                         size_t y_len) {
    int st = check_common(p, x, y, "global_avgpool");
    if (st != ONNXQ_OK) return st;
    if ((st = check_quant(p, "global_avgpool")) != ONNXQ_OK) return st;
    if ((st = check_global_size(p, "global_avgpool")) != ONNXQ_OK) return st;
    const size_t x_need = p->batch * p->in_h * p->in_w * p->channels;
    if ((st = check_lengths("global_avgpool", x_len, x_need, y_len, p->batch * p->channels)) !=
        ONNXQ_OK)
        return st;
    if ((st = onnxq_isa_check()) != ONNXQ_OK) return st;
    return global_run(p, x, y);
}

int onnxq_avgpool(const onnxq_pool_params* p, const void* x, size_t x_len, void* y, size_t y_len) {
    int st = check_common(p, x, y, "avgpool");
    if (st != ONNXQ_OK) return st;
    size_t oh, ow;
    if ((st = check_window(p, "avgpool", &oh, &ow)) != ONNXQ_OK) return st;
    if ((st = check_quant(p, "avgpool")) != ONNXQ_OK) return st;
    const size_t x_need = p->batch * p->in_h * p->in_w * p->channels;
    size_t y_need;
    if (onnxq_mul_overflow(p->batch * p->channels, oh, &y_need) ||
        onnxq_mul_overflow(y_need, ow, &y_need))
        return onnxq_error(ONNXQ_E_SHAPE, "avgpool: output size overflows");
    if ((st = check_lengths("avgpool", x_len, x_need, y_len, y_need)) != ONNXQ_OK) return st;
    if ((st = onnxq_isa_check()) != ONNXQ_OK) return st;
    const int whole = p->kernel_h == p->in_h && p->kernel_w == p->in_w && p->pad_top == 0 &&
                      p->pad_left == 0 && p->pad_bottom == 0 && p->pad_right == 0 &&
                      p->dilation_h == 1 && p->dilation_w == 1;
    if (whole) {
        if ((st = check_global_size(p, "avgpool")) != ONNXQ_OK) return st;
        return global_run(p, x, y); /* onnxruntime's route for a kernel covering the image */
    }
    const int32_t tmin = p->qtype == ONNXQ_U8 ? 0 : -128, tmax = p->qtype == ONNXQ_U8 ? 255 : 127;
    onnxq_avgpool_ukernel_params ap = {p->x_scale, p->x_zp, 1.0f, p->y_scale, (float)p->y_zp,
                                       (float)tmin, (float)tmax};
    const void* fn;
    pixel_fn* pix;
    if (p->qtype == ONNXQ_U8) {
        const onnxq_avgpool_u8_entry* e = onnxq_avgpool_u8_select();
        if (e == NULL) return onnxq_isa_check();
        fn = (const void*)e->fn;
        pix = avg_u8;
    } else {
        const onnxq_avgpool_s8_entry* e = onnxq_avgpool_s8_select();
        if (e == NULL) return onnxq_isa_check();
        fn = (const void*)e->fn;
        pix = avg_s8;
    }
    return run_windows(p, oh, ow, (const uint8_t*)x, (uint8_t*)y, fn, pix, 1, &ap, "avgpool");
}
