/* Quantize / dequantize entry points: validation, then the selected micro-kernel per channel run. */
#include <math.h>

#include "common/internal.h"
#include "onnxq_kernels.h"

static int check_params(const onnxq_quant_params* p, const void* x, size_t x_len, const void* y,
                        size_t y_len, const char* what) {
    ONNXQ_CHECK_NOT_NULL(p, "params");
    ONNXQ_CHECK_NOT_NULL(x, "x");
    ONNXQ_CHECK_NOT_NULL(y, "y");
    ONNXQ_CHECK_NOT_NULL(p->scale, "scale");
    ONNXQ_CHECK_NOT_NULL(p->zp, "zero_point");
    if (p->qtype != ONNXQ_U8 && p->qtype != ONNXQ_S8)
        return onnxq_error(ONNXQ_E_ARG, "%s: qtype must be u8 or s8, got %d", what, p->qtype);
    if (p->outer == 0 || p->channels == 0 || p->inner == 0)
        return onnxq_error(ONNXQ_E_SHAPE, "%s: zero-size tensor (outer=%zu, channels=%zu, inner=%zu)",
                           what, p->outer, p->channels, p->inner);
    size_t total;
    if (onnxq_mul_overflow(p->outer, p->channels, &total) ||
        onnxq_mul_overflow(total, p->inner, &total) || total > (SIZE_MAX >> 3))
        return onnxq_error(ONNXQ_E_SHAPE, "%s: tensor size overflows", what);
    int st;
    if ((st = onnxq_check_array(what, "scale", p->scale, p->scale_len, p->channels, 1)) != ONNXQ_OK ||
        (st = onnxq_check_array(what, "zero_point", p->zp, p->zp_len, p->channels, 1)) != ONNXQ_OK ||
        (st = onnxq_check_array(what, "x", x, x_len, total, 1)) != ONNXQ_OK ||
        (st = onnxq_check_array(what, "y", y, y_len, total, 1)) != ONNXQ_OK)
        return st;
    const int32_t qmin = p->qtype == ONNXQ_U8 ? 0 : -128, qmax = p->qtype == ONNXQ_U8 ? 255 : 127;
    for (size_t c = 0; c < p->channels; ++c) {
        const float s = p->scale[c];
        if (!(s > 0.0f) || !isfinite(s))
            return onnxq_error(ONNXQ_E_ARG, "%s: scale[%zu] = %g, expected a finite value > 0", what,
                               c, (double)s);
        if (p->zp[c] < qmin || p->zp[c] > qmax)
            return onnxq_error(ONNXQ_E_ARG, "%s: zero_point[%zu] = %d, expected %d..%d", what, c,
                               (int)p->zp[c], (int)qmin, (int)qmax);
    }
    return onnxq_isa_check();
}

int onnxq_quantize(const onnxq_quant_params* p, const float* x, size_t x_len, void* y,
                   size_t y_len) {
    int st = check_params(p, x, x_len, y, y_len, "quantize");
    if (st != ONNXQ_OK) return st;
    const size_t ch = p->channels, inner = p->inner;
    if (p->qtype == ONNXQ_U8) {
        const onnxq_quantize_f32_u8_entry* e = onnxq_quantize_f32_u8_select();
        if (e == NULL) return onnxq_isa_check();
        uint8_t* out = (uint8_t*)y;
        for (size_t o = 0; o < p->outer; ++o)
            for (size_t c = 0; c < ch; ++c) {
                const size_t off = (o * ch + c) * inner;
                e->fn(inner, x + off, p->scale[c], p->zp[c], out + off);
            }
    } else {
        const onnxq_quantize_f32_s8_entry* e = onnxq_quantize_f32_s8_select();
        if (e == NULL) return onnxq_isa_check();
        int8_t* out = (int8_t*)y;
        for (size_t o = 0; o < p->outer; ++o)
            for (size_t c = 0; c < ch; ++c) {
                const size_t off = (o * ch + c) * inner;
                e->fn(inner, x + off, p->scale[c], p->zp[c], out + off);
            }
    }
    return ONNXQ_OK;
}

int onnxq_dequantize(const onnxq_quant_params* p, const void* x, size_t x_len, float* y,
                     size_t y_len) {
    int st = check_params(p, x, x_len, y, y_len, "dequantize");
    if (st != ONNXQ_OK) return st;
    const size_t ch = p->channels, inner = p->inner;
    if (p->qtype == ONNXQ_U8) {
        const onnxq_dequantize_u8_f32_entry* e = onnxq_dequantize_u8_f32_select();
        if (e == NULL) return onnxq_isa_check();
        const uint8_t* in = (const uint8_t*)x;
        for (size_t o = 0; o < p->outer; ++o)
            for (size_t c = 0; c < ch; ++c) {
                const size_t off = (o * ch + c) * inner;
                e->fn(inner, in + off, p->scale[c], p->zp[c], y + off);
            }
    } else {
        const onnxq_dequantize_s8_f32_entry* e = onnxq_dequantize_s8_f32_select();
        if (e == NULL) return onnxq_isa_check();
        const int8_t* in = (const int8_t*)x;
        for (size_t o = 0; o < p->outer; ++o)
            for (size_t c = 0; c < ch; ++c) {
                const size_t off = (o * ch + c) * inner;
                e->fn(inner, in + off, p->scale[c], p->zp[c], y + off);
            }
    }
    return ONNXQ_OK;
}
