/* Public conv entry points: argument validation, weight packing and kernel choice (no arithmetic;
 * the loops over rows live in conv_run.c, the micro-kernels in the per-ISA files). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/internal.h"
#include "conv/conv_internal.h"
#include "onnxq_kernels.h"
#include "onnxq/conv.h"
#include "onnxq/gemm.h"

#define ONNXQ_CONV_MAX_K 65536u /* the GEMM's K limit */

static int is_depthwise(const onnxq_conv_weights_params* wp) {
    return wp->groups == wp->in_c && wp->out_c == wp->groups;
}

static int check_weights_params(const onnxq_conv_weights_params* wp) {
    ONNXQ_CHECK_NOT_NULL(wp, "conv weights params");
    if (wp->out_c == 0 || wp->in_c == 0 || wp->groups == 0 || wp->kernel_h == 0 ||
        wp->kernel_w == 0) {
        return onnxq_error(ONNXQ_E_SHAPE,
                           "conv: zero-size weights (out_c=%zu in_c=%zu groups=%zu kernel=%zux%zu);"
                           " every size must be >= 1",
                           wp->out_c, wp->in_c, wp->groups, wp->kernel_h, wp->kernel_w);
    }
    if (wp->out_c > ((size_t)1 << 31) || wp->in_c > ((size_t)1 << 31)) {
        return onnxq_error(ONNXQ_E_SHAPE, "conv: out_c=%zu / in_c=%zu exceed 2^31", wp->out_c,
                           wp->in_c);
    }
    if (wp->in_c % wp->groups != 0 || wp->out_c % wp->groups != 0) {
        return onnxq_error(ONNXQ_E_SHAPE,
                           "conv: groups=%zu must divide in_c=%zu and out_c=%zu", wp->groups,
                           wp->in_c, wp->out_c);
    }
    size_t taps, k, wlen;
    if (onnxq_mul_overflow(wp->kernel_h, wp->kernel_w, &taps) ||
        onnxq_mul_overflow(taps, wp->in_c / wp->groups, &k) || k > ONNXQ_CONV_MAX_K ||
        onnxq_mul_overflow(k, wp->out_c, &wlen)) {
        return onnxq_error(ONNXQ_E_SHAPE,
                           "conv: kernel_h*kernel_w*in_c/groups = %zu*%zu*%zu exceeds %u",
                           wp->kernel_h, wp->kernel_w, wp->in_c / wp->groups, ONNXQ_CONV_MAX_K);
    }
    return ONNXQ_OK;
}

/* Fills the header (sizes and offsets) of the packed layout of wp. */
static int conv_layout(const onnxq_conv_weights_params* wp, onnxq_conv_packed* h) {
    int st = check_weights_params(wp);
    if (st != ONNXQ_OK) return st;
    memset(h, 0, sizeof *h);
    h->magic = ONNXQ_CONV_MAGIC;
    h->version = ONNXQ_CONV_VERSION;
    h->out_c = wp->out_c;
    h->in_c = wp->in_c;
    h->groups = wp->groups;
    h->kernel_h = wp->kernel_h;
    h->kernel_w = wp->kernel_w;
    const size_t per_channel = onnxq_round_up(4 * wp->out_c, ONNXQ_CONV_ALIGN);
    h->bias_off = onnxq_round_up(sizeof *h, ONNXQ_CONV_ALIGN);
    h->scale_off = h->bias_off + per_channel;
    h->weights_off = h->scale_off + per_channel;
    const size_t taps = wp->kernel_h * wp->kernel_w;
    size_t bytes;
    if (is_depthwise(wp)) {
        h->kind = ONNXQ_CONV_KIND_DEPTHWISE;
        const size_t cpad = onnxq_round_up(wp->in_c, ONNXQ_DW_BLOCK);
        h->group_stride = 2 * cpad; /* int16 per tap: even and odd arrays */
        h->wsum_off = h->weights_off;
        h->scale_eo_off = h->wsum_off + 4 * cpad;
        h->weights_off = h->scale_eo_off + 4 * cpad;
        if (onnxq_mul_overflow(taps, 2 * h->group_stride, &bytes)) {
            return onnxq_error(ONNXQ_E_SHAPE, "conv: depthwise weights too large");
        }
        if (wp->kernel_w <= 4) { /* quad layout of the row kernels, after the int16 weights */
            h->quad_off = h->weights_off + bytes;
            bytes += wp->kernel_h * onnxq_round_up(wp->in_c, ONNXQ_DWROW_CHANNELS) * 4;
        }
    } else {
        h->kind = ONNXQ_CONV_KIND_GEMM;
        const size_t k = taps * (wp->in_c / wp->groups);
        h->group_size = onnxq_gemm_u8s8_packed_size(k, wp->out_c / wp->groups);
        if (h->group_size == 0) {
            return onnxq_error(ONNXQ_E_SHAPE, "conv: GEMM cannot pack K=%zu x N=%zu weights", k,
                               wp->out_c / wp->groups);
        }
        h->group_stride = onnxq_round_up(h->group_size, ONNXQ_CONV_ALIGN);
        if (onnxq_mul_overflow(wp->groups, h->group_stride, &bytes)) {
            return onnxq_error(ONNXQ_E_SHAPE, "conv: packed weights too large");
        }
    }
    h->total_size = h->weights_off + bytes;
    return ONNXQ_OK;
}

int onnxq_conv_packed_size(const onnxq_conv_weights_params* wp, size_t* size) {
    ONNXQ_CHECK_NOT_NULL(size, "size");
    onnxq_conv_packed h;
    int st = conv_layout(wp, &h);
    if (st == ONNXQ_OK) *size = h.total_size;
    return st;
}

static int pack_gemm_groups(const onnxq_conv_packed* h, const int8_t* weights, uint8_t* base) {
    const size_t taps = h->kernel_h * h->kernel_w;
    const size_t cg = h->in_c / h->groups, og = h->out_c / h->groups, k = taps * cg;
    int8_t* b = malloc(k * og); /* one group as [og][k], k in (kh, kw, c) order like im2col */
    if (b == NULL) return onnxq_error(ONNXQ_E_NOMEM, "conv: cannot allocate %zu bytes", k * og);
    int st = ONNXQ_OK;
    for (size_t g = 0; g < h->groups && st == ONNXQ_OK; g++) {
        for (size_t n = 0; n < og; n++) {
            const int8_t* src = weights + (g * og + n) * cg * taps; /* OIHW: [c][kh*kw] */
            for (size_t t = 0; t < taps; t++) {
                for (size_t c = 0; c < cg; c++) b[n * k + t * cg + c] = src[c * taps + t];
            }
        }
        st = onnxq_gemm_u8s8_pack(b, k, og, 1, (ptrdiff_t)k, 0,
                                  base + h->weights_off + g * h->group_stride, h->group_size);
    }
    free(b);
    return st;
}

int onnxq_conv_pack(const onnxq_conv_weights_params* wp, const int8_t* weights, size_t weights_len,
                    const int32_t* bias, const float* scale, size_t scale_len, void* packed,
                    size_t packed_size) {
    onnxq_conv_packed h;
    int st = conv_layout(wp, &h);
    if (st != ONNXQ_OK) return st;
    ONNXQ_CHECK_NOT_NULL(weights, "conv weights");
    ONNXQ_CHECK_NOT_NULL(scale, "conv scale");
    ONNXQ_CHECK_NOT_NULL(packed, "conv packed buffer");
    const size_t expect = wp->out_c * (wp->in_c / wp->groups) * wp->kernel_h * wp->kernel_w;
    if (weights_len != expect) {
        return onnxq_error(ONNXQ_E_SHAPE,
                           "conv: weights have %zu values, expected O*I*kh*kw = %zu*%zu*%zu*%zu",
                           weights_len, wp->out_c, wp->in_c / wp->groups, wp->kernel_h,
                           wp->kernel_w);
    }
    if (scale_len != 1 && scale_len != wp->out_c) {
        return onnxq_error(ONNXQ_E_SHAPE, "conv: scale has %zu values, expected 1 or out_c=%zu",
                           scale_len, wp->out_c);
    }
    for (size_t i = 0; i < scale_len; i++) {
        if (!isfinite(scale[i]) || !(scale[i] > 0.0f)) {
            return onnxq_error(ONNXQ_E_ARG, "conv: scale[%zu]=%g must be finite and > 0", i,
                               (double)scale[i]);
        }
    }
    if (packed_size < h.total_size) {
        return onnxq_error(ONNXQ_E_SHAPE, "conv: packed buffer has %zu bytes, needs %zu",
                           packed_size, (size_t)h.total_size);
    }
    if ((uintptr_t)packed % 8 != 0) {
        return onnxq_error(ONNXQ_E_ARG, "conv: packed buffer must be 8-byte aligned");
    }
    uint8_t* base = packed;
    memset(base, 0, h.total_size);
    int32_t* pb = (int32_t*)(base + h.bias_off);
    float* ps = (float*)(base + h.scale_off);
    for (size_t o = 0; o < wp->out_c; o++) {
        pb[o] = bias != NULL ? bias[o] : 0;
        ps[o] = scale[scale_len == 1 ? 0 : o];
    }
    if (h.kind == ONNXQ_CONV_KIND_DEPTHWISE) {
        int16_t* pw = (int16_t*)(base + h.weights_off);
        int32_t* wsum = (int32_t*)(base + h.wsum_off);
        float* scale_eo = (float*)(base + h.scale_eo_off);
        const size_t taps = wp->kernel_h * wp->kernel_w;
        for (size_t c = 0; c < wp->in_c; c++) {
            const size_t i = c % ONNXQ_DW_BLOCK, blk = (c - i) * 2; /* int16 offset of the block */
            int32_t sum = 0;
            for (size_t t = 0; t < taps; t++) {
                const int8_t v = weights[c * taps + t];
                pw[t * h.group_stride + blk + (i & 1u) * ONNXQ_DW_BLOCK + i] = v;
                sum += v;
            }
            wsum[c] = sum;
            scale_eo[onnxq_dw_eo_index(c)] = ps[c];
        }
        if (h.quad_off != 0) {
            int8_t* q = (int8_t*)(base + h.quad_off);
            const size_t cpad = onnxq_round_up(wp->in_c, ONNXQ_DWROW_CHANNELS);
            for (size_t c = 0; c < wp->in_c; c++) {
                for (size_t i = 0; i < wp->kernel_h; i++) {
                    for (size_t j = 0; j < wp->kernel_w; j++) {
                        q[4 * (i * cpad + c) + j] = weights[(c * wp->kernel_h + i) * wp->kernel_w + j];
                    }
                }
            }
        }
    } else {
        st = pack_gemm_groups(&h, weights, base);
        if (st != ONNXQ_OK) return st;
    }
    memcpy(base, &h, sizeof h); /* last: a failed pack leaves no valid header */
    return ONNXQ_OK;
}

int onnxq_conv_output_size(const onnxq_conv_params* p, size_t* out_h, size_t* out_w) {
    ONNXQ_CHECK_NOT_NULL(p, "conv params");
    ONNXQ_CHECK_NOT_NULL(out_h, "out_h");
    ONNXQ_CHECK_NOT_NULL(out_w, "out_w");
    int st = check_weights_params(&p->w);
    if (st != ONNXQ_OK) return st;
    if (p->batch == 0 || p->in_h == 0 || p->in_w == 0) {
        return onnxq_error(ONNXQ_E_SHAPE, "conv: zero-size input (batch=%zu in_h=%zu in_w=%zu)",
                           p->batch, p->in_h, p->in_w);
    }
    if (p->stride_h == 0 || p->stride_w == 0 || p->dilation_h == 0 || p->dilation_w == 0) {
        return onnxq_error(ONNXQ_E_ARG, "conv: strides (%zu, %zu) and dilations (%zu, %zu) must be"
                           " >= 1", p->stride_h, p->stride_w, p->dilation_h, p->dilation_w);
    }
    const size_t big = (size_t)1 << 31; /* keeps the sums below far from wrapping */
    if (p->in_h > big || p->in_w > big || p->pad_top > big || p->pad_bottom > big ||
        p->pad_left > big || p->pad_right > big || p->dilation_h > big || p->dilation_w > big) {
        return onnxq_error(ONNXQ_E_SHAPE, "conv: input size, pads or dilations exceed 2^31");
    }
    const size_t eh = p->dilation_h * (p->w.kernel_h - 1) + 1;
    const size_t ew = p->dilation_w * (p->w.kernel_w - 1) + 1;
    const size_t ph = p->in_h + p->pad_top + p->pad_bottom;
    const size_t pw = p->in_w + p->pad_left + p->pad_right;
    if (eh > ph || ew > pw) {
        return onnxq_error(ONNXQ_E_SHAPE,
                           "conv: kernel %zux%zu (dilated extent %zux%zu) is larger than the padded"
                           " input %zux%zu", p->w.kernel_h, p->w.kernel_w, eh, ew, ph, pw);
    }
    *out_h = (ph - eh) / p->stride_h + 1;
    *out_w = (pw - ew) / p->stride_w + 1;
    return ONNXQ_OK;
}

static int is_direct_1x1(const onnxq_conv_params* p) {
    return p->w.kernel_h == 1 && p->w.kernel_w == 1 && p->stride_h == 1 && p->stride_w == 1 &&
           p->pad_top == 0 && p->pad_left == 0 && p->pad_bottom == 0 && p->pad_right == 0;
}

/* Depthwise by quad rows: kernels at most 16x4 and stride_h = dilation_h = dilation_w = 1,
 * when the row kernel's ISA is at least that of the per-pixel kernel. */
static int use_dwrow(const onnxq_conv_params* p) {
    if (!is_depthwise(&p->w) || p->w.kernel_w > 4 || p->w.kernel_h > 16 || p->stride_h != 1 ||
        p->dilation_h != 1 || p->dilation_w != 1) {
        return 0;
    }
    const onnxq_dwrow_u8s8_rq_entry* row = onnxq_dwrow_u8s8_rq_select();
    const onnxq_dwrowpack_u8_entry* pack = onnxq_dwrowpack_u8_select();
    const onnxq_dwconv_u8s8_rq_entry* pixel = onnxq_dwconv_u8s8_rq_select();
    return row != NULL && pack != NULL && pixel != NULL && row->isa >= pixel->isa &&
           pack->isa == row->isa;
}

const char* onnxq_conv_algorithm(const onnxq_conv_params* p) {
    if (p == NULL) return "?";
    if (is_depthwise(&p->w)) return use_dwrow(p) ? "depthwise_rows" : "depthwise";
    return is_direct_1x1(p) ? "direct_1x1" : "im2col";
}

const char* onnxq_conv_kernel_name(const onnxq_conv_params* p) {
    if (p == NULL || onnxq_isa_check() != ONNXQ_OK) return NULL;
    if (use_dwrow(p)) return onnxq_dwrow_u8s8_rq_select()->name;
    if (is_depthwise(&p->w)) {
        const onnxq_dwconv_u8s8_rq_entry* e = onnxq_dwconv_u8s8_rq_select();
        return e != NULL ? e->name : NULL;
    }
    return onnxq_kernel_selected("gemm_u8s8");
}

static int check_packed(const onnxq_conv_params* p, const void* packed, size_t packed_size) {
    ONNXQ_CHECK_NOT_NULL(packed, "conv packed weights");
    onnxq_conv_packed h;
    if (packed_size < sizeof h) {
        return onnxq_error(ONNXQ_E_ARG, "conv: packed weights too small (%zu bytes)", packed_size);
    }
    memcpy(&h, packed, sizeof h);
    if ((uintptr_t)packed % 8 != 0) {
        return onnxq_error(ONNXQ_E_ARG, "conv: packed weights must be 8-byte aligned");
    }
    if (h.magic != ONNXQ_CONV_MAGIC || h.version != ONNXQ_CONV_VERSION) {
        return onnxq_error(ONNXQ_E_ARG, "conv: packed weights were not written by onnxq_conv_pack");
    }
    if (h.total_size > packed_size) {
        return onnxq_error(ONNXQ_E_ARG, "conv: packed weights truncated (%zu of %zu bytes)",
                           packed_size, (size_t)h.total_size);
    }
    if (h.out_c != p->w.out_c || h.in_c != p->w.in_c || h.groups != p->w.groups ||
        h.kernel_h != p->w.kernel_h || h.kernel_w != p->w.kernel_w) {
        return onnxq_error(ONNXQ_E_SHAPE,
                           "conv: packed weights are O=%zu C=%zu groups=%zu kernel=%zux%zu but params"
                           " say O=%zu C=%zu groups=%zu kernel=%zux%zu",
                           (size_t)h.out_c, (size_t)h.in_c, (size_t)h.groups, (size_t)h.kernel_h,
                           (size_t)h.kernel_w, p->w.out_c, p->w.in_c, p->w.groups, p->w.kernel_h,
                           p->w.kernel_w);
    }
    return ONNXQ_OK;
}

int onnxq_conv_run(const onnxq_conv_params* p, const void* packed, size_t packed_size,
                   const uint8_t* x, size_t x_len, uint8_t* y, size_t y_len) {
    int st = onnxq_isa_check();
    if (st != ONNXQ_OK) return st;
    size_t oh, ow;
    st = onnxq_conv_output_size(p, &oh, &ow);
    if (st != ONNXQ_OK) return st;
    st = check_packed(p, packed, packed_size);
    if (st != ONNXQ_OK) return st;
    ONNXQ_CHECK_NOT_NULL(x, "conv input");
    ONNXQ_CHECK_NOT_NULL(y, "conv output");
    size_t xn, yn;
    if (onnxq_mul_overflow(p->batch, p->in_h, &xn) || onnxq_mul_overflow(xn, p->in_w, &xn) ||
        onnxq_mul_overflow(xn, p->w.in_c, &xn) || xn != x_len) {
        return onnxq_error(ONNXQ_E_SHAPE, "conv: input has %zu values, expected N*H*W*C ="
                           " %zu*%zu*%zu*%zu", x_len, p->batch, p->in_h, p->in_w, p->w.in_c);
    }
    if (onnxq_mul_overflow(p->batch, oh, &yn) || onnxq_mul_overflow(yn, ow, &yn) ||
        onnxq_mul_overflow(yn, p->w.out_c, &yn) || yn != y_len) {
        return onnxq_error(ONNXQ_E_SHAPE, "conv: output has %zu values, expected N*OH*OW*O ="
                           " %zu*%zu*%zu*%zu", y_len, p->batch, oh, ow, p->w.out_c);
    }
    if (p->qmin > p->qmax) {
        return onnxq_error(ONNXQ_E_ARG, "conv: qmin=%u > qmax=%u", p->qmin, p->qmax);
    }
    onnxq_conv_job_plan plan = {
        .p = p, .packed = packed, .x = x, .y = y, .out_h = oh, .out_w = ow,
        .dw = NULL, .dwrow = NULL, .dwrowpack = NULL, .direct_1x1 = is_direct_1x1(p),
    };
    if (is_depthwise(&p->w)) {
        const onnxq_dwconv_u8s8_rq_entry* e = onnxq_dwconv_u8s8_rq_select();
        if (e == NULL) return onnxq_error(ONNXQ_E_INTERNAL, "conv: no depthwise kernel");
        plan.dw = e->fn;
        if (use_dwrow(p) && ((const onnxq_conv_packed*)packed)->quad_off != 0) {
            plan.dwrow = onnxq_dwrow_u8s8_rq_select()->fn;
            plan.dwrowpack = onnxq_dwrowpack_u8_select()->fn;
        }
    }
    return onnxq_conv_execute(&plan);
}
