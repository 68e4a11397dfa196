/* Public conv entry points: argument validation and kernel choice (no arithmetic; packing is in
 * pack.c, the loops over rows in conv_run.c / dwconv_run.c, the micro-kernels in the per-ISA
 * files). */
#include <string.h>

#include "common/internal.h"
#include "conv/conv_internal.h"
#include "onnxq_kernels.h"
#include "onnxq/conv.h"
#include "onnxq/gemm.h"

int onnxq_conv_is_depthwise(const onnxq_conv_weights_params* wp) {
    return wp->groups == wp->in_c && wp->out_c == wp->groups;
}

int onnxq_conv_check_weights(const onnxq_conv_weights_params* wp) {
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

int onnxq_conv_output_size(const onnxq_conv_params* p, size_t* out_h, size_t* out_w) {
    ONNXQ_CHECK_NOT_NULL(p, "conv params");
    ONNXQ_CHECK_NOT_NULL(out_h, "out_h");
    ONNXQ_CHECK_NOT_NULL(out_w, "out_w");
    int st = onnxq_conv_check_weights(&p->w);
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
    if (!onnxq_conv_is_depthwise(&p->w) || p->w.kernel_w > 4 || p->w.kernel_h > ONNXQ_CONV_MAX_DWROW_KH || p->stride_h != 1 ||
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
    if (onnxq_conv_is_depthwise(&p->w)) return use_dwrow(p) ? "depthwise_rows" : "depthwise";
    return is_direct_1x1(p) ? "direct_1x1" : "im2col";
}

const char* onnxq_conv_kernel_name(const onnxq_conv_params* p) {
    if (p == NULL || onnxq_conv_check_weights(&p->w) != ONNXQ_OK || onnxq_isa_check() != ONNXQ_OK)
        return NULL;
    if (use_dwrow(p)) return onnxq_dwrow_u8s8_rq_select()->name;
    if (onnxq_conv_is_depthwise(&p->w)) {
        const onnxq_dwconv_u8s8_rq_entry* e = onnxq_dwconv_u8s8_rq_select();
        return e != NULL ? e->name : NULL;
    }
    return onnxq_gemm_u8s8_kernel_name(p->w.kernel_h * p->w.kernel_w * (p->w.in_c / p->w.groups));
}

static int check_packed(const onnxq_conv_params* p, const void* packed, size_t packed_size) {
    onnxq_conv_packed h;
    const int st = onnxq_conv_packed_check(packed, packed_size, &h);
    if (st != ONNXQ_OK) return st;
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
    ONNXQ_CHECK_NOT_NULL(p, "conv params");
    return onnxq_conv_run_cols(p, packed, packed_size, x, x_len, y, y_len, 0, p->w.out_c);
}

int onnxq_conv_run_cols(const onnxq_conv_params* p, const void* packed, size_t packed_size,
                        const uint8_t* x, size_t x_len, uint8_t* y, size_t y_len, size_t col0,
                        size_t cols) {
    ONNXQ_CHECK_NOT_NULL(p, "conv params");
    int st = onnxq_isa_check();
    if (st != ONNXQ_OK) return st;
    size_t oh, ow;
    st = onnxq_conv_output_size(p, &oh, &ow);
    if (st != ONNXQ_OK) return st;
    if (p->threads > ONNXQ_CONV_MAX_THREADS) {
        return onnxq_error(ONNXQ_E_ARG, "conv: threads=%zu, expected 0..%d", p->threads,
                           (int)ONNXQ_CONV_MAX_THREADS);
    }
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
    const int all = col0 == 0 && cols == p->w.out_c;
    if (!all && (cols == 0 || col0 % ONNXQ_GEMM_NR_COLS != 0 || col0 >= p->w.out_c ||
                 cols > p->w.out_c - col0 || p->w.groups != 1)) {
        return onnxq_error(ONNXQ_E_ARG, "conv: output channels [%zu, %zu + %zu) are not a non-empty"
                           " range inside O=%zu starting at a multiple of %d, or groups=%zu != 1",
                           col0, col0, cols, p->w.out_c, ONNXQ_GEMM_NR_COLS, p->w.groups);
    }
    onnxq_conv_job_plan plan = {
        .p = p, .packed = packed, .x = x, .x_len = x_len, .y = y, .y_len = y_len,
        .out_h = oh, .out_w = ow,
        .dw = NULL, .dwrow = NULL, .dwrowpack = NULL, .direct_1x1 = is_direct_1x1(p),
        .col0 = col0, .cols = cols,
    };
    if (onnxq_conv_is_depthwise(&p->w)) {
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
