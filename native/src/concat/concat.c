/* Quantized concat entry point: validation, per-input copy or requantisation (lookup table for the
 * scalar kernel, the same fp32 arithmetic vectorised for the others). */
#include <math.h>
#include <string.h>

#include "common/internal.h"
#include "onnxq/concat.h"
#include "onnxq_kernels.h"

static void build_table(uint8_t table[256], int is_signed, const onnxq_requant_ukernel_params* p) {
    for (int i = 0; i < 256; ++i) {
        const int32_t q = is_signed ? (int32_t)(int8_t)(uint8_t)i : i;
        float v = (p->x_scale * (float)(q - p->x_zp)) / p->y_scale;
        v = v >= p->lo ? v : p->lo; /* NaN -> lo, like max_ps(v, lo) */
        v = v <= p->hi ? v : p->hi;
        table[i] = (uint8_t)((int32_t)nearbyintf(v) + p->y_zp);
    }
}

static int validate(const onnxq_qconcat_params* p, const void* y, size_t y_len, size_t* axis_total) {
    ONNXQ_CHECK_NOT_NULL(p, "params");
    ONNXQ_CHECK_NOT_NULL(y, "y");
    ONNXQ_CHECK_NOT_NULL(p->inputs, "inputs");
    if (p->qtype != ONNXQ_U8 && p->qtype != ONNXQ_S8)
        return onnxq_error(ONNXQ_E_ARG, "qconcat: qtype must be u8 or s8, got %d", p->qtype);
    if (p->n_inputs == 0) return onnxq_error(ONNXQ_E_ARG, "qconcat: no inputs");
    if (p->outer == 0 || p->inner == 0)
        return onnxq_error(ONNXQ_E_SHAPE, "qconcat: zero-size tensors (outer=%zu, inner=%zu)",
                           p->outer, p->inner);
    const int32_t tmin = p->qtype == ONNXQ_U8 ? 0 : -128, tmax = p->qtype == ONNXQ_U8 ? 255 : 127;
    if (!(p->y_scale > 0.0f) || !isfinite(p->y_scale))
        return onnxq_error(ONNXQ_E_ARG, "qconcat: y_scale = %g, expected a finite value > 0",
                           (double)p->y_scale);
    if (p->y_zp < tmin || p->y_zp > tmax)
        return onnxq_error(ONNXQ_E_ARG, "qconcat: y_zero_point = %d, expected %d..%d", (int)p->y_zp,
                           (int)tmin, (int)tmax);
    size_t total_axis = 0, row;
    for (size_t i = 0; i < p->n_inputs; ++i) {
        const onnxq_qconcat_input* in = &p->inputs[i];
        if (in->data == NULL) return onnxq_error(ONNXQ_E_ARG, "qconcat: input %zu is NULL", i);
        if (in->axis == 0)
            return onnxq_error(ONNXQ_E_SHAPE, "qconcat: input %zu has extent 0 along the axis", i);
        size_t need;
        if (onnxq_mul_overflow(p->outer, in->axis, &need) ||
            onnxq_mul_overflow(need, p->inner, &need))
            return onnxq_error(ONNXQ_E_SHAPE, "qconcat: input %zu size overflows", i);
        if (in->len != need)
            return onnxq_error(ONNXQ_E_SHAPE,
                               "qconcat: input %zu has %zu elements, expected %zu (outer %zu x axis "
                               "%zu x inner %zu)", i, in->len, need, p->outer, in->axis, p->inner);
        if (!(in->scale > 0.0f) || !isfinite(in->scale))
            return onnxq_error(ONNXQ_E_ARG, "qconcat: input %zu scale = %g, expected a finite value > 0",
                               i, (double)in->scale);
        if (in->zp < tmin || in->zp > tmax)
            return onnxq_error(ONNXQ_E_ARG, "qconcat: input %zu zero point = %d, expected %d..%d", i,
                               (int)in->zp, (int)tmin, (int)tmax);
        total_axis += in->axis;
        if (total_axis < in->axis) return onnxq_error(ONNXQ_E_SHAPE, "qconcat: axis extent overflows");
    }
    size_t need;
    if (onnxq_mul_overflow(p->outer, total_axis, &need) ||
        onnxq_mul_overflow(need, p->inner, &row))
        return onnxq_error(ONNXQ_E_SHAPE, "qconcat: output size overflows");
    if (y_len != row)
        return onnxq_error(ONNXQ_E_SHAPE, "qconcat: y has %zu elements, expected %zu", y_len, row);
    *axis_total = total_axis;
    return onnxq_isa_check();
}

int onnxq_qconcat(const onnxq_qconcat_params* p, void* y, size_t y_len) {
    size_t axis_total = 0;
    int st = validate(p, y, y_len, &axis_total);
    if (st != ONNXQ_OK) return st;
    const int is_signed = p->qtype == ONNXQ_S8;
    const int32_t tmin = is_signed ? -128 : 0, tmax = is_signed ? 127 : 255;
    const onnxq_requant_u8_entry* eu = NULL;
    const onnxq_requant_s8_entry* es = NULL;
    if (is_signed) {
        if ((es = onnxq_requant_s8_select()) == NULL) return onnxq_isa_check();
    } else {
        if ((eu = onnxq_requant_u8_select()) == NULL) return onnxq_isa_check();
    }
    const size_t out_row = axis_total * p->inner;
    uint8_t* out = (uint8_t*)y;
    size_t offset = 0;
    uint8_t table[256];
    for (size_t i = 0; i < p->n_inputs; ++i) {
        const onnxq_qconcat_input* in = &p->inputs[i];
        const size_t chunk = in->axis * p->inner;
        const uint8_t* src = (const uint8_t*)in->data;
        const int copy = in->scale == p->y_scale && in->zp == p->y_zp;
        onnxq_requant_ukernel_params rp = {in->scale, in->zp, p->y_scale, p->y_zp,
                                           (float)(tmin - p->y_zp), (float)(tmax - p->y_zp), table};
        if (!copy) build_table(table, is_signed, &rp);
        for (size_t o = 0; o < p->outer; ++o) {
            uint8_t* dst = out + o * out_row + offset;
            const uint8_t* s = src + o * chunk;
            if (copy)
                memcpy(dst, s, chunk);
            else if (is_signed)
                es->fn(chunk, (const int8_t*)s, (int8_t*)dst, &rp);
            else
                eu->fn(chunk, s, dst, &rp);
        }
        offset += chunk;
    }
    return ONNXQ_OK;
}
