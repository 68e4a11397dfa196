/* u8s8 GEMM entry points: packing, validation, dispatch (no arithmetic beyond packing). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/internal.h"
#include "gemm/ukernel.h"
#include "onnxq_kernels.h"

#define MAX_DIM ((size_t)1 << 31)
/* Under amx, a K below this runs the AVX-512 VNNI kernel: AMX tiles pad K to 64, so K <= 32
 * wastes at least half of every tdpbusd, and the vpdpbusd kernel reads only ceil(K / 4) groups.
 * Measured on Sapphire Rapids (1x1 convs, M = 784..12544): K = 16 / 24 / 32 run 1.4x / 1.2x /
 * 1.0x faster on avx512vnni; from K = 48 amx wins. */
#define AMX_MIN_K 33

static size_t header_bytes(void) { return onnxq_round_up(sizeof(onnxq_gemm_u8s8_packed), 64); }

/* Fills the layout fields of h for k x n; 0 on success, 1 when too large. */
static int layout(size_t k, size_t n, onnxq_gemm_u8s8_packed* h) {
    if (k == 0 || n == 0 || k > MAX_DIM || n > MAX_DIM) return 1;
    const size_t kq = onnxq_round_up(k, ONNXQ_GEMM_KC) / 4;
    const size_t nb = (n + ONNXQ_GEMM_NR - 1) / ONNXQ_GEMM_NR;
    size_t data, colsum = nb * ONNXQ_GEMM_NR * sizeof(int32_t);
    if (onnxq_mul_overflow(nb, kq * 64, &data)) return 1;
    memset(h, 0, sizeof *h);
    h->magic = ONNXQ_GEMM_MAGIC;
    h->version = ONNXQ_GEMM_VERSION;
    h->k = k;
    h->n = n;
    h->kq = kq;
    h->nb = nb;
    h->colsum_off = header_bytes();
    h->data_off = onnxq_round_up(h->colsum_off + colsum, 64);
    if (data > SIZE_MAX - h->data_off) return 1;
    h->total = h->data_off + data;
    return 0;
}

size_t onnxq_gemm_u8s8_packed_size(size_t k, size_t n) {
    onnxq_gemm_u8s8_packed h;
    return layout(k, n, &h) ? 0 : (size_t)h.total;
}

int onnxq_gemm_u8s8_pack(const int8_t* b, size_t b_len, size_t k, size_t n, ptrdiff_t stride_k,
                         ptrdiff_t stride_n, int32_t b_zp, void* packed, size_t packed_size) {
    ONNXQ_CHECK_NOT_NULL(b, "b");
    ONNXQ_CHECK_NOT_NULL(packed, "packed");
    if (b_zp != 0)
        return onnxq_error(ONNXQ_E_ARG, "gemm pack: weight zero point must be 0 (symmetric s8), got %d",
                           (int)b_zp);
    if (((uintptr_t)packed & 7u) != 0)
        return onnxq_error(ONNXQ_E_ARG, "gemm pack: packed buffer must be 8-byte aligned");
    onnxq_gemm_u8s8_packed h;
    if (layout(k, n, &h))
        return onnxq_error(ONNXQ_E_SHAPE, "gemm pack: bad weight shape k=%zu, n=%zu (need 1..2^31)",
                           k, n);
    if (stride_k < 0 || stride_n < 0)
        return onnxq_error(ONNXQ_E_ARG, "gemm pack: strides (%td, %td) must be >= 0", stride_k,
                           stride_n);
    size_t last_k, last_n, last;
    if (onnxq_mul_overflow(k - 1, (size_t)stride_k, &last_k) ||
        onnxq_mul_overflow(n - 1, (size_t)stride_n, &last_n) ||
        __builtin_add_overflow(last_k, last_n, &last) || last >= b_len)
        return onnxq_error(ONNXQ_E_SHAPE,
                           "gemm pack: b has %zu values, too few for k=%zu x n=%zu with strides "
                           "(%td, %td)", b_len, k, n, stride_k, stride_n);
    if (packed_size < h.total)
        return onnxq_error(ONNXQ_E_SHAPE, "gemm pack: packed buffer has %zu bytes, need %zu",
                           packed_size, (size_t)h.total);
    uint8_t* base = (uint8_t*)packed;
    int32_t* colsum = (int32_t*)(base + h.colsum_off);
    int8_t* w = (int8_t*)(base + h.data_off);
    memset(base, 0, h.total);
    int small = 1;
    for (size_t j = 0; j < h.nb; ++j) {
        int8_t* blk = w + j * h.kq * 64;
        for (size_t c = 0; c < ONNXQ_GEMM_NR; ++c) {
            const size_t col = j * ONNXQ_GEMM_NR + c;
            if (col >= n) break;
            uint32_t sum = 0; /* wraps like the int32 accumulators */
            for (size_t kk = 0; kk < k; ++kk) {
                const int8_t v = b[(ptrdiff_t)kk * stride_k + (ptrdiff_t)col * stride_n];
                blk[(kk / 4) * 64 + c * 4 + (kk % 4)] = v;
                sum += (uint32_t)(int32_t)v;
                small &= v >= -ONNXQ_GEMM_SMALL_WEIGHT_MAX && v <= ONNXQ_GEMM_SMALL_WEIGHT_MAX;
            }
            colsum[col] = (int32_t)sum;
        }
    }
    h.flags = small ? ONNXQ_GEMM_SMALL_WEIGHTS : 0u;
    memcpy(base, &h, sizeof h);
    return ONNXQ_OK;
}

static int check_packed(const void* packed, size_t packed_size, const onnxq_gemm_u8s8_packed** out) {
    ONNXQ_CHECK_NOT_NULL(packed, "packed");
    if (((uintptr_t)packed & 7u) != 0)
        return onnxq_error(ONNXQ_E_ARG, "gemm: packed buffer must be 8-byte aligned");
    if (packed_size < sizeof(onnxq_gemm_u8s8_packed))
        return onnxq_error(ONNXQ_E_ARG, "gemm: packed buffer of %zu bytes is too small for its "
                           "header (truncated, or not written by onnxq_gemm_u8s8_pack)", packed_size);
    const onnxq_gemm_u8s8_packed* h = (const onnxq_gemm_u8s8_packed*)packed;
    onnxq_gemm_u8s8_packed want;
    /* The header must be exactly the layout of its own k x n (but for the flags, which say what
     * packing found in the weights): every offset and size is then inside h->total, and h->total
     * inside packed_size. */
    int bad = h->magic != ONNXQ_GEMM_MAGIC || h->version != ONNXQ_GEMM_VERSION ||
              (h->flags & ~ONNXQ_GEMM_SMALL_WEIGHTS) != 0 || h->k > MAX_DIM || h->n > MAX_DIM ||
              layout((size_t)h->k, (size_t)h->n, &want);
    if (!bad) {
        want.flags = h->flags;
        bad = memcmp(h, &want, sizeof want) != 0;
    }
    if (bad)
        return onnxq_error(ONNXQ_E_ARG,
                           "gemm: packed buffer was not written by onnxq_gemm_u8s8_pack (bad header)");
    if (packed_size < h->total)
        return onnxq_error(ONNXQ_E_ARG, "gemm: packed buffer truncated: %zu bytes, its header "
                           "says %zu", packed_size, (size_t)h->total);
    *out = h;
    return ONNXQ_OK;
}

/* check_packed, then the caller's k x n against the buffer's. */
static int check_packed_shape(const void* packed, size_t packed_size, size_t k, size_t n,
                              const onnxq_gemm_u8s8_packed** out) {
    int st = check_packed(packed, packed_size, out);
    if (st != ONNXQ_OK) return st;
    if ((size_t)(*out)->k != k || (size_t)(*out)->n != n)
        return onnxq_error(ONNXQ_E_SHAPE, "gemm: packed weights are k=%zu x n=%zu, the caller says "
                           "k=%zu x n=%zu", (size_t)(*out)->k, (size_t)(*out)->n, k, n);
    return ONNXQ_OK;
}

int onnxq_gemm_u8s8_packed_shape(const void* packed, size_t packed_size, size_t* k, size_t* n) {
    const onnxq_gemm_u8s8_packed* h;
    int st = check_packed(packed, packed_size, &h);
    if (st != ONNXQ_OK) return st;
    if (k) *k = (size_t)h->k;
    if (n) *n = (size_t)h->n;
    return ONNXQ_OK;
}

int onnxq_gemm_u8s8_packed_small_weights(const void* packed, size_t packed_size, int* small) {
    const onnxq_gemm_u8s8_packed* h;
    ONNXQ_CHECK_NOT_NULL(small, "small");
    int st = check_packed(packed, packed_size, &h);
    if (st != ONNXQ_OK) return st;
    *small = (h->flags & ONNXQ_GEMM_SMALL_WEIGHTS) != 0;
    return ONNXQ_OK;
}

int onnxq_gemm_u8s8_packed_colsum(const void* packed, size_t packed_size, size_t k, size_t n,
                                  int32_t* colsum, size_t colsum_len) {
    const onnxq_gemm_u8s8_packed* h;
    int st = check_packed_shape(packed, packed_size, k, n, &h);
    if (st != ONNXQ_OK) return st;
    if ((st = onnxq_check_array("gemm colsum", "colsum", colsum, colsum_len, n, 1)) != ONNXQ_OK)
        return st;
    memcpy(colsum, (const uint8_t*)packed + h->colsum_off, n * sizeof(int32_t));
    return ONNXQ_OK;
}

static int check_params(const onnxq_gemm_u8s8_packed* h, const onnxq_gemm_u8s8_params* p) {
    const size_t k = (size_t)h->k, n = (size_t)h->n;
    if (p->m == 0) return onnxq_error(ONNXQ_E_SHAPE, "gemm: m is 0 (zero-size A)");
    if (p->m > MAX_DIM) return onnxq_error(ONNXQ_E_SHAPE, "gemm: m=%zu is too large", p->m);
    if (p->lda < k)
        return onnxq_error(ONNXQ_E_SHAPE, "gemm: lda=%zu is smaller than k=%zu", p->lda, k);
    if (p->ldc < n)
        return onnxq_error(ONNXQ_E_SHAPE, "gemm: ldc=%zu is smaller than n=%zu", p->ldc, n);
    size_t a_need, c_need;
    if (onnxq_span(p->m, k, p->lda, &a_need) || onnxq_span(p->m, n, p->ldc, &c_need) ||
        c_need > (SIZE_MAX >> 3))
        return onnxq_error(ONNXQ_E_SHAPE, "gemm: m * lda or m * ldc overflows");
    int st;
    if ((st = onnxq_check_array("gemm", "a", p->a, p->a_len, a_need, 0)) != ONNXQ_OK ||
        (st = onnxq_check_array("gemm", "c", p->c, p->c_len, c_need, 0)) != ONNXQ_OK)
        return st;
    if (p->bias != NULL && (st = onnxq_check_array("gemm", "bias", p->bias, p->bias_len, n, 1)) != ONNXQ_OK)
        return st;
    if (p->bias_f != NULL &&
        (st = onnxq_check_array("gemm", "bias_f", p->bias_f, p->bias_f_len, n, 1)) != ONNXQ_OK)
        return st;
    if (p->a_zp < 0 || p->a_zp > 255)
        return onnxq_error(ONNXQ_E_ARG, "gemm: a_zero_point=%d, expected 0..255", (int)p->a_zp);
    int tmin, tmax;
    switch (p->out_type) {
        case ONNXQ_U8: tmin = 0; tmax = 255; break;
        case ONNXQ_S8: tmin = -128; tmax = 127; break;
        case ONNXQ_F32: case ONNXQ_I32: tmin = tmax = 0; break;
        default: return onnxq_error(ONNXQ_E_ARG, "gemm: out_type %d is not u8/s8/f32/i32", p->out_type);
    }
    if (p->out_type == ONNXQ_I32) return ONNXQ_OK;
    ONNXQ_CHECK_NOT_NULL(p->scale, "scale");
    if (p->scale_len != 1 && p->scale_len != n)
        return onnxq_error(ONNXQ_E_SHAPE, "gemm: scale has %zu values, expected 1 or n=%zu",
                           p->scale_len, n);
    for (size_t j = 0; j < p->scale_len; ++j)
        if (!isfinite(p->scale[j]) || p->scale[j] < 0.0f)
            return onnxq_error(ONNXQ_E_ARG, "gemm: scale[%zu]=%g, expected finite and >= 0", j,
                               (double)p->scale[j]);
    if (p->out_type == ONNXQ_F32) return ONNXQ_OK;
    if (p->out_zp < tmin || p->out_zp > tmax)
        return onnxq_error(ONNXQ_E_ARG, "gemm: out_zero_point=%d, expected %d..%d", (int)p->out_zp,
                           tmin, tmax);
    if (p->qmin < tmin || p->qmax > tmax || p->qmin > p->qmax)
        return onnxq_error(ONNXQ_E_ARG, "gemm: clamp [%d, %d] is not inside [%d, %d] or empty",
                           (int)p->qmin, (int)p->qmax, tmin, tmax);
    return ONNXQ_OK;
}

/* The kernel onnxq_gemm_u8s8_run uses for K under the active ISA (NULL when it is unusable): the
 * best one, except the small-K rule above. */
static const onnxq_gemm_u8s8_entry* choose(size_t k) {
    const onnxq_gemm_u8s8_entry* e = onnxq_gemm_u8s8_select();
    if (e == NULL || e->isa != ONNXQ_ISA_AMX || k >= AMX_MIN_K ||
        !onnxq_isa_usable(ONNXQ_ISA_AVX512VNNI))
        return e;
    for (size_t i = 0; i < onnxq_gemm_u8s8_table_len; ++i)
        if (onnxq_gemm_u8s8_table[i].isa == ONNXQ_ISA_AVX512VNNI) return &onnxq_gemm_u8s8_table[i];
    return e;
}

const char* onnxq_gemm_u8s8_kernel_name(size_t k) {
    if (onnxq_isa_check() != ONNXQ_OK) return NULL;
    const onnxq_gemm_u8s8_entry* e = choose(k);
    return e != NULL ? e->name : NULL;
}

int onnxq_gemm_u8s8_run(const void* packed, size_t packed_size, const onnxq_gemm_u8s8_params* p) {
    ONNXQ_CHECK_NOT_NULL(p, "params");
    return onnxq_gemm_u8s8_run_cols(packed, packed_size, p, 0, p->n);
}

int onnxq_gemm_u8s8_run_cols(const void* packed, size_t packed_size, const onnxq_gemm_u8s8_params* p,
                             size_t col0, size_t cols) {
    ONNXQ_CHECK_NOT_NULL(p, "params");
    const onnxq_gemm_u8s8_packed* h;
    int st = check_packed_shape(packed, packed_size, p->k, p->n, &h);
    if (st == ONNXQ_OK) st = check_params(h, p);
    if (st == ONNXQ_OK && (col0 % ONNXQ_GEMM_NR != 0 || cols == 0 || col0 > p->n || cols > p->n - col0))
        st = onnxq_error(ONNXQ_E_SHAPE, "gemm: columns [%zu, %zu + %zu) are not a non-empty range "
                         "inside n=%zu starting at a multiple of %d", col0, col0, cols, p->n,
                         ONNXQ_GEMM_NR);
    if (st == ONNXQ_OK) st = onnxq_isa_check();
    if (st != ONNXQ_OK) return st;
    const onnxq_gemm_u8s8_entry* e = choose((size_t)h->k);
    if (e == NULL) return onnxq_isa_check();

    /* The kernel sees the columns [col0, col0 + cols) as a matrix of its own: its blocks, column
     * arrays and C start at col0 (a multiple of the 16-column block). */
    const size_t b0 = col0 / ONNXQ_GEMM_NR, nb = (cols + ONNXQ_GEMM_NR - 1) / ONNXQ_GEMM_NR;
    const size_t npad = nb * ONNXQ_GEMM_NR, n = cols;
    /* corr | scale | bias_f, each npad values of 4 bytes */
    uint32_t* ws = (uint32_t*)malloc(3 * npad * sizeof(uint32_t));
    if (ws == NULL) return onnxq_error(ONNXQ_E_NOMEM, "gemm: cannot allocate %zu bytes", 12 * npad);
    int32_t* corr = (int32_t*)ws;
    float* scale = (float*)(ws + npad);
    float* bias_f = (float*)(ws + 2 * npad);
    const int32_t* colsum = (const int32_t*)((const uint8_t*)packed + h->colsum_off) + col0;
    for (size_t j = 0; j < npad; ++j) {
        const size_t jc = col0 + j;
        const uint32_t b = (j < n && p->bias) ? (uint32_t)p->bias[jc] : 0u;
        corr[j] = (int32_t)(b - (uint32_t)p->a_zp * (uint32_t)colsum[j]);
        scale[j] = (j < n && p->out_type != ONNXQ_I32)
                       ? p->scale[p->scale_len == 1 ? 0 : jc]
                       : 0.0f;
        bias_f[j] = (j < n && p->bias_f) ? p->bias_f[jc] : 0.0f;
    }
    const size_t esize = p->out_type == ONNXQ_U8 || p->out_type == ONNXQ_S8 ? 1 : 4;
    onnxq_gemm_u8s8_ctx ctx = {
        .w = (const int8_t*)packed + h->data_off + b0 * (size_t)h->kq * 64,
        .k = (size_t)h->k,
        .kq = (size_t)h->kq,
        .n = n,
        .nb = nb,
        .corr = corr,
        .colsum = colsum,
        .small_weights = (h->flags & ONNXQ_GEMM_SMALL_WEIGHTS) != 0,
        .scale = scale,
        .bias_f = (p->out_type == ONNXQ_F32 && p->bias_f) ? bias_f : NULL,
        .out_type = p->out_type,
        .out_zp = p->out_zp,
        .lo = (float)(p->qmin - p->out_zp),
        .hi = (float)(p->qmax - p->out_zp),
        .c = (uint8_t*)p->c + col0 * esize,
        .ldc = p->ldc,
    };
    st = e->fn(&ctx, p->a, p->lda, p->m);
    free(ws);
    return st;
}
