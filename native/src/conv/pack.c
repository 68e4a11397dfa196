/* Weight packing of the conv family: the packed layout (conv_internal.h) for GEMM groups and for
 * the depthwise kernels (even/odd int16 arrays, quad rows), filled once per layer. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/internal.h"
#include "conv/conv_internal.h"
#include "onnxq/conv.h"
#include "onnxq/gemm.h"

/* Fills the header (sizes and offsets) of the packed layout of wp. */
static int conv_layout(const onnxq_conv_weights_params* wp, onnxq_conv_packed* h) {
    int st = onnxq_conv_check_weights(wp);
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
    if (onnxq_conv_is_depthwise(wp)) {
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
    if (bytes > SIZE_MAX - h->weights_off) {
        return onnxq_error(ONNXQ_E_SHAPE, "conv: packed weights too large");
    }
    h->total_size = h->weights_off + bytes;
    return ONNXQ_OK;
}

/* The header fields, for messages naming the one that disagrees with the layout. */
static const struct {
    const char* name;
    size_t offset;
    size_t size;
} header_fields[] = {
#define FIELD(f) {#f, offsetof(onnxq_conv_packed, f), sizeof(((onnxq_conv_packed*)0)->f)}
    FIELD(kind),         FIELD(reserved),     FIELD(total_size),   FIELD(bias_off),
    FIELD(scale_off),    FIELD(weights_off),  FIELD(group_stride), FIELD(group_size),
    FIELD(wsum_off),     FIELD(scale_eo_off), FIELD(quad_off),
#undef FIELD
};

static uint64_t field_value(const onnxq_conv_packed* h, size_t i) {
    const uint8_t* at = (const uint8_t*)h + header_fields[i].offset;
    if (header_fields[i].size == 4) {
        uint32_t v;
        memcpy(&v, at, 4);
        return v;
    }
    uint64_t v;
    memcpy(&v, at, 8);
    return v;
}

/* [off, off + len) inside [0, total), off aligned; 1 when not. */
static int bad_section(uint64_t off, uint64_t len, uint64_t total, uint64_t align) {
    return off % align != 0 || off > total || len > total - off;
}

int onnxq_conv_packed_check(const void* packed, size_t packed_size, onnxq_conv_packed* out) {
    ONNXQ_CHECK_NOT_NULL(packed, "conv packed weights");
    if ((uintptr_t)packed % 8 != 0) {
        return onnxq_error(ONNXQ_E_ARG, "conv: packed weights must be 8-byte aligned");
    }
    onnxq_conv_packed h;
    if (packed_size < sizeof h) {
        return onnxq_error(ONNXQ_E_ARG, "conv: packed weights too small (%zu bytes, the header has "
                           "%zu)", packed_size, sizeof h);
    }
    memcpy(&h, packed, sizeof h);
    if (h.magic != ONNXQ_CONV_MAGIC || h.version != ONNXQ_CONV_VERSION) {
        return onnxq_error(ONNXQ_E_ARG, "conv: packed weights were not written by onnxq_conv_pack "
                           "(magic/version)");
    }
    const uint64_t dim_max = (uint64_t)1 << 31;
    onnxq_conv_packed want;
    if (h.out_c > dim_max || h.in_c > dim_max || h.groups > dim_max || h.kernel_h > dim_max ||
        h.kernel_w > dim_max) {
        return onnxq_error(ONNXQ_E_ARG, "conv: packed weights were not written by onnxq_conv_pack "
                           "(header sizes exceed 2^31)");
    }
    const onnxq_conv_weights_params wp = {(size_t)h.out_c, (size_t)h.in_c, (size_t)h.groups,
                                          (size_t)h.kernel_h, (size_t)h.kernel_w};
    if (conv_layout(&wp, &want) != ONNXQ_OK) {
        return onnxq_error(ONNXQ_E_ARG, "conv: packed weights were not written by onnxq_conv_pack "
                           "(header shape O=%zu C=%zu groups=%zu kernel=%zux%zu is invalid)",
                           wp.out_c, wp.in_c, wp.groups, wp.kernel_h, wp.kernel_w);
    }
    /* Every offset and length must be the layout of the header's own shape. */
    for (size_t i = 0; i < sizeof header_fields / sizeof header_fields[0]; i++) {
        const uint64_t got = field_value(&h, i), expect = field_value(&want, i);
        if (got != expect) {
            return onnxq_error(ONNXQ_E_ARG, "conv: packed weights were not written by "
                               "onnxq_conv_pack (header %s = %llu, expected %llu)",
                               header_fields[i].name, (unsigned long long)got,
                               (unsigned long long)expect);
        }
    }
    if (h.total_size > packed_size) {
        return onnxq_error(ONNXQ_E_ARG, "conv: packed weights truncated (%zu of %zu bytes)",
                           packed_size, (size_t)h.total_size);
    }
    /* Redundant with the comparison above (the layout is built that way), kept as the
     * statement of what every kernel relies on: each section inside the buffer, aligned. */
    const uint64_t per_channel = 4 * h.out_c, total = h.total_size;
    int bad = bad_section(h.bias_off, per_channel, total, ONNXQ_CONV_ALIGN) ||
              bad_section(h.scale_off, per_channel, total, ONNXQ_CONV_ALIGN) ||
              bad_section(h.weights_off, 0, total, ONNXQ_CONV_ALIGN);
    if (h.kind == ONNXQ_CONV_KIND_DEPTHWISE) {
        const uint64_t cpad = onnxq_round_up((size_t)h.in_c, ONNXQ_DW_BLOCK);
        bad = bad || h.group_stride != 2 * cpad ||
              bad_section(h.wsum_off, 4 * cpad, total, ONNXQ_CONV_ALIGN) ||
              bad_section(h.scale_eo_off, 4 * cpad, total, ONNXQ_CONV_ALIGN) ||
              bad_section(h.weights_off, h.kernel_h * h.kernel_w * 2 * h.group_stride, total, 2) ||
              (h.quad_off != 0 &&
               bad_section(h.quad_off,
                           h.kernel_h * onnxq_round_up((size_t)h.in_c, ONNXQ_DWROW_CHANNELS) * 4,
                           total, 4));
    } else if (h.kind == ONNXQ_CONV_KIND_GEMM) {
        bad = bad || h.group_stride < h.group_size ||
              (h.groups > 0 && bad_section(h.weights_off, h.groups * h.group_stride, total,
                                           ONNXQ_CONV_ALIGN));
    } else {
        bad = 1;
    }
    if (bad) {
        return onnxq_error(ONNXQ_E_INTERNAL, "conv: packed layout of O=%zu C=%zu groups=%zu "
                           "kernel=%zux%zu does not fit its buffer", wp.out_c, wp.in_c, wp.groups,
                           wp.kernel_h, wp.kernel_w);
    }
    if (h.kind == ONNXQ_CONV_KIND_GEMM) { /* each group's packed B, as the GEMM will check it */
        const size_t k = wp.kernel_h * wp.kernel_w * (wp.in_c / wp.groups), og = wp.out_c / wp.groups;
        const uint8_t* base = packed;
        for (size_t g = 0; g < wp.groups; g++) {
            size_t gk = 0, gn = 0;
            const void* b = base + h.weights_off + g * h.group_stride;
            if (onnxq_gemm_u8s8_packed_shape(b, (size_t)h.group_size, &gk, &gn) != ONNXQ_OK) {
                return onnxq_error(ONNXQ_E_ARG, "conv: packed weights of group %zu are corrupt: %s",
                                   g, onnxq_last_error());
            }
            if (gk != k || gn != og) {
                return onnxq_error(ONNXQ_E_ARG, "conv: packed weights of group %zu are K=%zu x N=%zu,"
                                   " expected K=%zu x N=%zu", g, gk, gn, k, og);
            }
        }
    }
    if (out != NULL) *out = h;
    return ONNXQ_OK;
}

int onnxq_conv_packed_shape(const void* packed, size_t packed_size, onnxq_conv_weights_params* wp) {
    ONNXQ_CHECK_NOT_NULL(wp, "conv weights params");
    onnxq_conv_packed h;
    const int st = onnxq_conv_packed_check(packed, packed_size, &h);
    if (st != ONNXQ_OK) return st;
    wp->out_c = (size_t)h.out_c;
    wp->in_c = (size_t)h.in_c;
    wp->groups = (size_t)h.groups;
    wp->kernel_h = (size_t)h.kernel_h;
    wp->kernel_w = (size_t)h.kernel_w;
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
        st = onnxq_gemm_u8s8_pack(b, k * og, k, og, 1, (ptrdiff_t)k, 0,
                                  base + h->weights_off + g * h->group_stride, h->group_size);
    }
    free(b);
    return st;
}

int onnxq_conv_pack(const onnxq_conv_weights_params* wp, const int8_t* weights, size_t weights_len,
                    const int32_t* bias, size_t bias_len, const float* scale, size_t scale_len,
                    void* packed, size_t packed_size) {
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
    if (bias != NULL && bias_len != wp->out_c) {
        return onnxq_error(ONNXQ_E_SHAPE, "conv: bias has %zu values, expected out_c=%zu", bias_len,
                           wp->out_c);
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
