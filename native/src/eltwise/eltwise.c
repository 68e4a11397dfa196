/* Quantized add entry point: validation, broadcast handling, then the selected micro-kernel per row. */
#include <math.h>
#include <string.h>

#include "common/internal.h"
#include "onnxq/eltwise.h"
#include "onnxq_kernels.h"

static const char* bcast_name(int b) {
    switch (b) {
        case ONNXQ_BCAST_FULL: return "full";
        case ONNXQ_BCAST_INNER: return "inner";
        case ONNXQ_BCAST_ROW: return "row";
        case ONNXQ_BCAST_SCALAR: return "scalar";
        default: return "?";
    }
}

static int operand_len(const onnxq_qadd_params* p, int b, size_t total, size_t* len) {
    switch (b) {
        case ONNXQ_BCAST_FULL: *len = total; return 1;
        case ONNXQ_BCAST_INNER: *len = p->inner; return 1;
        case ONNXQ_BCAST_ROW: *len = p->outer; return 1;
        case ONNXQ_BCAST_SCALAR: *len = 1; return 1;
        default: return 0;
    }
}

static int is_row_constant(int b) { return b == ONNXQ_BCAST_ROW || b == ONNXQ_BCAST_SCALAR; }

static int check_scale(float s, const char* what) {
    if (!(s > 0.0f) || !isfinite(s))
        return onnxq_error(ONNXQ_E_ARG, "qadd: %s = %g, expected a finite value > 0", what,
                           (double)s);
    return ONNXQ_OK;
}

static int check_zp(int32_t zp, int32_t lo, int32_t hi, const char* what) {
    if (zp < lo || zp > hi)
        return onnxq_error(ONNXQ_E_ARG, "qadd: %s = %d, expected %d..%d", what, (int)zp, (int)lo,
                           (int)hi);
    return ONNXQ_OK;
}

static int validate(const onnxq_qadd_params* p, const void* a, size_t a_len, const void* b,
                    size_t b_len, const void* y, size_t y_len) {
    ONNXQ_CHECK_NOT_NULL(p, "params");
    ONNXQ_CHECK_NOT_NULL(a, "a");
    ONNXQ_CHECK_NOT_NULL(b, "b");
    ONNXQ_CHECK_NOT_NULL(y, "y");
    if (p->qtype != ONNXQ_U8 && p->qtype != ONNXQ_S8)
        return onnxq_error(ONNXQ_E_ARG, "qadd: qtype must be u8 or s8, got %d", p->qtype);
    if (p->outer == 0 || p->inner == 0)
        return onnxq_error(ONNXQ_E_SHAPE, "qadd: zero-size output (outer=%zu, inner=%zu)", p->outer,
                           p->inner);
    size_t total;
    if (onnxq_mul_overflow(p->outer, p->inner, &total))
        return onnxq_error(ONNXQ_E_SHAPE, "qadd: output size overflows");
    size_t need;
    if (!operand_len(p, p->a_bcast, total, &need))
        return onnxq_error(ONNXQ_E_ARG, "qadd: a_bcast = %d is not a broadcast form", p->a_bcast);
    if (a_len != need)
        return onnxq_error(ONNXQ_E_SHAPE, "qadd: a has %zu elements, expected %zu (%s broadcast)",
                           a_len, need, bcast_name(p->a_bcast));
    if (!operand_len(p, p->b_bcast, total, &need))
        return onnxq_error(ONNXQ_E_ARG, "qadd: b_bcast = %d is not a broadcast form", p->b_bcast);
    if (b_len != need)
        return onnxq_error(ONNXQ_E_SHAPE, "qadd: b has %zu elements, expected %zu (%s broadcast)",
                           b_len, need, bcast_name(p->b_bcast));
    if (y_len != total)
        return onnxq_error(ONNXQ_E_SHAPE, "qadd: y has %zu elements, expected %zu", y_len, total);
    int st;
    if ((st = check_scale(p->a_scale, "a_scale")) != ONNXQ_OK) return st;
    if ((st = check_scale(p->b_scale, "b_scale")) != ONNXQ_OK) return st;
    if ((st = check_scale(p->y_scale, "y_scale")) != ONNXQ_OK) return st;
    const int32_t tmin = p->qtype == ONNXQ_U8 ? 0 : -128, tmax = p->qtype == ONNXQ_U8 ? 255 : 127;
    if ((st = check_zp(p->a_zp, tmin, tmax, "a_zero_point")) != ONNXQ_OK) return st;
    if ((st = check_zp(p->b_zp, tmin, tmax, "b_zero_point")) != ONNXQ_OK) return st;
    if ((st = check_zp(p->y_zp, tmin, tmax, "y_zero_point")) != ONNXQ_OK) return st;
    if (p->qmin < tmin || p->qmax > tmax || p->qmin > p->qmax)
        return onnxq_error(ONNXQ_E_ARG, "qadd: clamp [%d, %d] must lie inside [%d, %d] with qmin <= qmax",
                           (int)p->qmin, (int)p->qmax, (int)tmin, (int)tmax);
    return onnxq_isa_check();
}

static float load_q(const void* base, size_t i, int is_signed) {
    return is_signed ? (float)((const int8_t*)base)[i] : (float)((const uint8_t*)base)[i];
}

/* Row r of a vector operand (FULL or INNER). */
static const void* row_ptr(const void* base, int bcast, size_t r, size_t inner) {
    return bcast == ONNXQ_BCAST_FULL ? (const void*)((const uint8_t*)base + r * inner) : base;
}

/* The value of a row-constant operand (ROW or SCALAR) in row r. */
static float row_value(const void* base, int bcast, size_t r, int is_signed) {
    return load_q(base, bcast == ONNXQ_BCAST_ROW ? r : 0, is_signed);
}

typedef void run_fn(size_t n, const void* a, const void* b, void* y,
                    const onnxq_qadd_ukernel_params* k, const void* fn);

static void run_u8(size_t n, const void* a, const void* b, void* y,
                   const onnxq_qadd_ukernel_params* k, const void* fn) {
    ((onnxq_qadd_u8_ukernel_fn*)fn)(n, (const uint8_t*)a, (const uint8_t*)b, (uint8_t*)y, k);
}

static void run_s8(size_t n, const void* a, const void* b, void* y,
                   const onnxq_qadd_ukernel_params* k, const void* fn) {
    ((onnxq_qadd_s8_ukernel_fn*)fn)(n, (const int8_t*)a, (const int8_t*)b, (int8_t*)y, k);
}

int onnxq_qadd(const onnxq_qadd_params* p, const void* a, size_t a_len, const void* b,
               size_t b_len, void* y, size_t y_len) {
    int st = validate(p, a, a_len, b, b_len, y, y_len);
    if (st != ONNXQ_OK) return st;
    const int is_signed = p->qtype == ONNXQ_S8;
    const void* fn;
    run_fn* run;
    if (is_signed) {
        const onnxq_qadd_s8_entry* e = onnxq_qadd_s8_select();
        if (e == NULL) return onnxq_isa_check();
        fn = (const void*)e->fn;
        run = run_s8;
    } else {
        const onnxq_qadd_u8_entry* e = onnxq_qadd_u8_select();
        if (e == NULL) return onnxq_isa_check();
        fn = (const void*)e->fn;
        run = run_u8;
    }
    const float ra = p->a_scale / p->y_scale, rb = p->b_scale / p->y_scale;
    const float fixed = (float)p->y_zp - fmaf(ra, (float)p->a_zp, rb * (float)p->b_zp);
    if (!isfinite(ra) || !isfinite(rb) || !isfinite(fixed))
        return onnxq_error(ONNXQ_E_ARG, "qadd: scale ratios a_scale / y_scale = %g, b_scale / y_scale "
                           "= %g are out of the fp32 range", (double)ra, (double)rb);
    onnxq_qadd_ukernel_params k = {ra, rb, fixed, (float)p->qmin, (float)p->qmax};
    const int a_const = is_row_constant(p->a_bcast), b_const = is_row_constant(p->b_bcast);
    const size_t inner = p->inner;
    uint8_t* out = (uint8_t*)y;
    for (size_t r = 0; r < p->outer; ++r) {
        uint8_t* yr = out + r * inner;
        if (a_const && b_const) {
            /* Both constant along the row: one value (the general formula), filled. */
            float v = fmaf(row_value(a, p->a_bcast, r, is_signed), ra,
                           fmaf(row_value(b, p->b_bcast, r, is_signed), rb, fixed));
            v = v >= k.lo ? v : k.lo;
            v = v <= k.hi ? v : k.hi;
            memset(yr, (int)(uint8_t)(int32_t)nearbyintf(v), inner);
        } else if (b_const) {
            k.ra = ra;
            k.fixed = fmaf(row_value(b, p->b_bcast, r, is_signed), rb, fixed);
            run(inner, row_ptr(a, p->a_bcast, r, inner), NULL, yr, &k, fn);
        } else if (a_const) {
            k.ra = rb;
            k.fixed = fmaf(row_value(a, p->a_bcast, r, is_signed), ra, fixed);
            run(inner, row_ptr(b, p->b_bcast, r, inner), NULL, yr, &k, fn);
        } else {
            k.ra = ra;
            k.rb = rb;
            k.fixed = fixed;
            run(inner, row_ptr(a, p->a_bcast, r, inner), row_ptr(b, p->b_bcast, r, inner), yr, &k,
                fn);
        }
    }
    return ONNXQ_OK;
}
