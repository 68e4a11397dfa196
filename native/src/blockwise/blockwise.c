/* Block-wise 4-bit weights x int8 per-row activations (onnxq/blockwise.h): validation, packing,
 * the activations' quantization (the dynamic family's min / max kernels and onnxq_quantize), and
 * the dispatch of the panel micro-kernels over columns (conv's thread pool); no arithmetic of the
 * product itself here. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blockwise/ukernel.h"
#include "common/internal.h"
#include "conv/conv_internal.h"
#include "onnxq/blockwise.h"
#include "onnxq_kernels.h"

#define QB4W_MAGIC 0x57344251u /* "QB4W" */
#define QB4W_VERSION 1u
#define QB4W_MAX_DIM ((size_t)1 << 31)
#define QB4W_MAX_BLOCK ((size_t)65536) /* keeps a block's int32 sum exact: 15 * 128 * 65536 < 2^31 */
#define QB4W_ALIGN 64u
/* below this many multiply-adds a call runs on the calling thread only */
#define QB4W_MIN_PARALLEL_MACS ((size_t)1 << 18)

typedef struct qb4w_header {
    uint32_t magic;
    uint32_t version;
    uint64_t k, n, block, nb, has_zp;
    uint64_t w_off, w_len, s_off, s_len, z_off, z_len, total;
} qb4w_header;

static size_t header_bytes(void) { return onnxq_round_up(sizeof(qb4w_header), QB4W_ALIGN); }

static int block_ok(size_t block) {
    return block >= 32 && block <= QB4W_MAX_BLOCK && (block & (block - 1)) == 0;
}

/* The header of k x n weights in blocks of `block`; 1 on overflow. */
static int layout(size_t k, size_t n, size_t block, int has_zp, qb4w_header* h) {
    memset(h, 0, sizeof *h);
    const size_t nb = (k + block - 1) / block, panels = (n + ONNXQ_QB4W_NR - 1) / ONNXQ_QB4W_NR;
    size_t cells, wl, sl, zl;
    if (onnxq_mul_overflow(panels, nb, &cells) || onnxq_mul_overflow(cells, block * 8, &wl) ||
        onnxq_mul_overflow(cells, ONNXQ_QB4W_NR * sizeof(float), &sl) ||
        onnxq_mul_overflow(cells, has_zp ? ONNXQ_QB4W_NR : 0, &zl) || wl > (SIZE_MAX >> 4) ||
        sl > (SIZE_MAX >> 4) || zl > (SIZE_MAX >> 4))
        return 1;
    h->magic = QB4W_MAGIC;
    h->version = QB4W_VERSION;
    h->k = k, h->n = n, h->block = block, h->nb = nb, h->has_zp = has_zp ? 1 : 0;
    h->w_off = header_bytes();
    h->w_len = wl;
    h->s_off = h->w_off + onnxq_round_up(wl, QB4W_ALIGN);
    h->s_len = sl;
    h->z_off = h->s_off + onnxq_round_up(sl, QB4W_ALIGN);
    h->z_len = zl;
    h->total = h->z_off + onnxq_round_up(zl, QB4W_ALIGN);
    return 0;
}

static int check_shape(const char* what, size_t k, size_t n, size_t block) {
    if (!block_ok(block))
        return onnxq_error(ONNXQ_E_ARG, "%s: block = %zu, expected a power of two in [32, %zu]", what,
                           block, QB4W_MAX_BLOCK);
    if (k == 0 || n == 0 || k > QB4W_MAX_DIM || n > QB4W_MAX_DIM)
        return onnxq_error(ONNXQ_E_SHAPE, "%s: weights of %zu x %zu, expected 1 .. 2^31 each", what, n, k);
    return ONNXQ_OK;
}

int onnxq_qb4w_packed_size(size_t k, size_t n, size_t block, int has_zero_points, size_t* size) {
    ONNXQ_CHECK_NOT_NULL(size, "qb4w_packed_size: size");
    int st = check_shape("qb4w_packed_size", k, n, block);
    if (st != ONNXQ_OK) return st;
    qb4w_header h;
    if (layout(k, n, block, has_zero_points, &h))
        return onnxq_error(ONNXQ_E_SHAPE, "qb4w_packed_size: %zu x %zu weights overflow", n, k);
    *size = h.total;
    return ONNXQ_OK;
}

/* The header of a packed buffer, checked completely (module conventions: native/README.md). */
static int read_header(const char* what, const void* packed, size_t packed_size, const qb4w_header** out) {
    if (packed == NULL) return onnxq_error(ONNXQ_E_ARG, "%s: packed is NULL", what);
    if (((uintptr_t)packed & 7u) != 0)
        return onnxq_error(ONNXQ_E_ARG, "%s: packed buffer is not 8-byte aligned", what);
    if (packed_size < header_bytes())
        return onnxq_error(ONNXQ_E_ARG, "%s: packed buffer of %zu bytes is shorter than its header "
                           "(truncated, or not written by onnxq_qb4w_pack)", what, packed_size);
    const qb4w_header* h = packed;
    qb4w_header want;
    if (h->magic != QB4W_MAGIC || h->version != QB4W_VERSION || h->has_zp > 1 ||
        !block_ok((size_t)h->block) || h->k == 0 || h->n == 0 || h->k > QB4W_MAX_DIM ||
        h->n > QB4W_MAX_DIM || layout((size_t)h->k, (size_t)h->n, (size_t)h->block, (int)h->has_zp, &want) ||
        memcmp(h, &want, sizeof want) != 0)
        return onnxq_error(ONNXQ_E_ARG, "%s: packed buffer was not written by onnxq_qb4w_pack (bad header)",
                           what);
    if (h->total > packed_size)
        return onnxq_error(ONNXQ_E_ARG, "%s: packed buffer truncated: %zu bytes, its header says %zu",
                           what, packed_size, (size_t)h->total);
    *out = h;
    return ONNXQ_OK;
}

int onnxq_qb4w_packed_shape(const void* packed, size_t packed_size, size_t* k, size_t* n,
                            size_t* block) {
    ONNXQ_CHECK_NOT_NULL(k, "qb4w_packed_shape: k");
    ONNXQ_CHECK_NOT_NULL(n, "qb4w_packed_shape: n");
    ONNXQ_CHECK_NOT_NULL(block, "qb4w_packed_shape: block");
    const qb4w_header* h = NULL;
    int st = read_header("qb4w_packed_shape", packed, packed_size, &h);
    if (st != ONNXQ_OK) return st;
    *k = (size_t)h->k, *n = (size_t)h->n, *block = (size_t)h->block;
    return ONNXQ_OK;
}

int onnxq_qb4w_pack(size_t k, size_t n, size_t block, const uint8_t* b, size_t b_len,
                    const float* scales, size_t scales_len, const uint8_t* zero_points,
                    size_t zero_points_len, void* packed, size_t packed_size) {
    const char* what = "qb4w_pack";
    int st = check_shape(what, k, n, block);
    if (st != ONNXQ_OK) return st;
    qb4w_header h;
    const int has_zp = zero_points != NULL;
    if (layout(k, n, block, has_zp, &h))
        return onnxq_error(ONNXQ_E_SHAPE, "%s: %zu x %zu weights overflow", what, n, k);
    const size_t nb = (size_t)h.nb, row_bytes = nb * (block / 2), zrow = (nb + 1) / 2;
    if ((st = onnxq_check_array(what, "b", b, b_len, n * row_bytes, 1)) != ONNXQ_OK ||
        (st = onnxq_check_array(what, "scales", scales, scales_len, n * nb, 1)) != ONNXQ_OK ||
        (has_zp && (st = onnxq_check_array(what, "zero_points", zero_points, zero_points_len, n * zrow, 1)) !=
                       ONNXQ_OK) ||
        (st = onnxq_check_array(what, "packed", packed, packed_size, (size_t)h.total, 0)) != ONNXQ_OK)
        return st;
    if (((uintptr_t)packed & 7u) != 0)
        return onnxq_error(ONNXQ_E_ARG, "%s: packed buffer is not 8-byte aligned", what);
    for (size_t i = 0; i < n * nb; ++i)
        if (!isfinite(scales[i]))
            return onnxq_error(ONNXQ_E_ARG, "%s: scales[%zu] = %g, expected a finite value", what, i,
                               (double)scales[i]);
    uint8_t* base = packed;
    memset(base, 0, (size_t)h.total);
    memcpy(base, &h, sizeof h);
    uint8_t* w = base + h.w_off;
    float* s = (float*)(void*)(base + h.s_off);
    uint8_t* z = has_zp ? base + h.z_off : NULL;
    const size_t groups = block / ONNXQ_QB4W_GROUP, panel_bytes = nb * groups * ONNXQ_QB4W_GROUP_BYTES;
    for (size_t col = 0; col < n; ++col) {
        const size_t p = col / ONNXQ_QB4W_NR, c = col % ONNXQ_QB4W_NR;
        const uint8_t* row = b + col * row_bytes;
        uint8_t* wp = w + p * panel_bytes + (c / 8) * 32 + (c % 8) * 4;
        for (size_t i = 0; i < nb * block; ++i) { /* value i of the row, padding included */
            const uint8_t code = (uint8_t)((row[i / 2] >> (4 * (i % 2))) & 0x0f);
            const size_t g = i / ONNXQ_QB4W_GROUP, j = i % ONNXQ_QB4W_GROUP;
            wp[g * ONNXQ_QB4W_GROUP_BYTES + (j % 4)] |= (uint8_t)(code << (j < 4 ? 0 : 4));
        }
        for (size_t blk = 0; blk < nb; ++blk) {
            const size_t cell = (p * nb + blk) * ONNXQ_QB4W_NR + c;
            s[cell] = scales[col * nb + blk];
            if (z != NULL) z[cell] = (uint8_t)((zero_points[col * zrow + blk / 2] >> (4 * (blk % 2))) & 0x0f);
        }
    }
    return ONNXQ_OK;
}

/* Checks r against k and block (sizes, lengths, pointers). */
static int check_rows(const char* what, const onnxq_qd8_rows* r, size_t* kp, size_t* nb) {
    ONNXQ_CHECK_NOT_NULL(r, "rows");
    if (!block_ok(r->block))
        return onnxq_error(ONNXQ_E_ARG, "%s: rows.block = %zu, expected a power of two in [32, %zu]", what,
                           r->block, QB4W_MAX_BLOCK);
    if (r->m == 0 || r->k == 0 || r->k > QB4W_MAX_DIM)
        return onnxq_error(ONNXQ_E_SHAPE, "%s: rows of %zu x %zu, expected at least 1 x 1", what, r->m, r->k);
    *nb = (r->k + r->block - 1) / r->block;
    *kp = *nb * r->block;
    size_t qn, bn;
    if (onnxq_mul_overflow(r->m, *kp, &qn) || onnxq_mul_overflow(r->m, *nb, &bn) || qn > (SIZE_MAX >> 3))
        return onnxq_error(ONNXQ_E_SHAPE, "%s: rows of %zu x %zu overflow", what, r->m, r->k);
    int st;
    if ((st = onnxq_check_array(what, "rows.q", r->q, r->q_len, qn, 1)) != ONNXQ_OK ||
        (st = onnxq_check_array(what, "rows.scale", r->scale, r->scale_len, r->m, 1)) != ONNXQ_OK ||
        (st = onnxq_check_array(what, "rows.bsum", r->bsum, r->bsum_len, bn, 1)) != ONNXQ_OK)
        return st;
    return ONNXQ_OK;
}

/* The row's amax after checking that every value is finite. */
static int row_amax(const onnxq_minmax_f32_entry* e, const float* x, size_t k, size_t row, float* amax) {
    float lo = INFINITY, hi = -INFINITY;
    e->fn(k, x, &lo, &hi);
    if (!isfinite(lo) || !isfinite(hi))
        return onnxq_error(ONNXQ_E_ARG, "qd8_quantize_rows: a row %zu contains NaN or infinity; "
                           "expected finite values", row);
    *amax = -lo > hi ? -lo : hi;
    return ONNXQ_OK;
}

int onnxq_qd8_quantize_rows(const float* a, size_t a_len, size_t lda, const onnxq_qd8_rows* r) {
    const char* what = "qd8_quantize_rows";
    size_t kp, nb, need;
    int st = check_rows(what, r, &kp, &nb);
    if (st != ONNXQ_OK) return st;
    if (lda < r->k) return onnxq_error(ONNXQ_E_SHAPE, "%s: lda = %zu < k = %zu", what, lda, r->k);
    if (onnxq_span(r->m, r->k, lda, &need) || need > (SIZE_MAX >> 3))
        return onnxq_error(ONNXQ_E_SHAPE, "%s: size overflows", what);
    if ((st = onnxq_check_array(what, "a", a, a_len, need, 0)) != ONNXQ_OK) return st;
    if ((st = onnxq_isa_check()) != ONNXQ_OK) return st;
    const onnxq_minmax_f32_entry* e = onnxq_minmax_f32_select();
    if (e == NULL) return onnxq_isa_check();
    float amax;
    for (size_t i = 0; i < r->m; ++i) /* every row checked before anything is written */
        if ((st = row_amax(e, a + i * lda, r->k, i, &amax)) != ONNXQ_OK) return st;
    const int32_t zp = 0;
    for (size_t i = 0; i < r->m; ++i) {
        row_amax(e, a + i * lda, r->k, i, &amax);
        float scale = amax / 127.0f;
        if (!(scale > 0.0f)) scale = 1.0f; /* all zeros, or subnormals too small to scale */
        int8_t* q = r->q + i * kp;
        onnxq_quant_params qp = {1, 1, r->k, &scale, 1, &zp, 1, ONNXQ_S8};
        if ((st = onnxq_quantize(&qp, a + i * lda, r->k, q, r->k)) != ONNXQ_OK) return st;
        memset(q + r->k, 0, kp - r->k);
        r->scale[i] = scale;
        for (size_t b = 0; b < nb; ++b) {
            int32_t s = 0;
            for (size_t j = 0; j < r->block; ++j) s += q[b * r->block + j];
            r->bsum[i * nb + b] = s;
        }
    }
    return ONNXQ_OK;
}

typedef struct qb4w_job {
    const qb4w_header* h;
    const uint8_t* base;
    const onnxq_qd8_rows* r;
    const float* bias;
    float* y;
    size_t ldy, col0, col1, panels_per_task;
    onnxq_qd8_f32_qb4w_ukernel_fn* fn;
} qb4w_job;

/* Columns [c0, c1) (c0 a multiple of 16) of every row. */
static void run_columns(const qb4w_job* j, size_t c0, size_t c1) {
    const qb4w_header* h = j->h;
    const size_t nb = (size_t)h->nb, block = (size_t)h->block, kp = nb * block;
    const size_t panel_bytes = nb * block * 8;
    for (size_t col = c0; col < c1; col += ONNXQ_QB4W_NR) {
        const size_t p = col / ONNXQ_QB4W_NR, valid = c1 - col < ONNXQ_QB4W_NR ? c1 - col : ONNXQ_QB4W_NR;
        const uint8_t* w = j->base + h->w_off + p * panel_bytes;
        const float* ws = (const float*)(const void*)(j->base + h->s_off) + p * nb * ONNXQ_QB4W_NR;
        const uint8_t* zp = h->has_zp ? j->base + h->z_off + p * nb * ONNXQ_QB4W_NR : NULL;
        for (size_t i = 0; i < j->r->m; ++i) {
            float out[ONNXQ_QB4W_NR];
            j->fn(nb, block, j->r->q + i * kp, j->r->bsum + i * nb, j->r->scale[i], w, ws, zp, out);
            float* y = j->y + i * j->ldy + col;
            if (j->bias != NULL) {
                for (size_t c = 0; c < valid; ++c) y[c] = out[c] + j->bias[col + c];
            } else {
                memcpy(y, out, valid * sizeof(float));
            }
        }
    }
}

static void run_task(void* arg, size_t task, size_t participant) {
    (void)participant;
    const qb4w_job* j = arg;
    const size_t c0 = j->col0 + task * j->panels_per_task * ONNXQ_QB4W_NR;
    const size_t c1 = c0 + j->panels_per_task * ONNXQ_QB4W_NR;
    run_columns(j, c0, c1 < j->col1 ? c1 : j->col1);
}

/* Checks everything run_cols reads and writes; fills the job (fn included). */
static int prepare(const char* what, const void* packed, size_t packed_size, const onnxq_qd8_rows* r,
                   const float* bias, size_t bias_len, float* y, size_t y_len, size_t ldy, qb4w_job* j) {
    const qb4w_header* h = NULL;
    size_t kp, nb, need;
    int st = read_header(what, packed, packed_size, &h);
    if (st != ONNXQ_OK) return st;
    ONNXQ_CHECK_NOT_NULL(r, "rows");
    if (r->k != h->k || r->block != h->block)
        return onnxq_error(ONNXQ_E_SHAPE, "%s: the rows have k = %zu in blocks of %zu, the packed weights "
                           "k = %zu in blocks of %zu", what, r->k, r->block, (size_t)h->k, (size_t)h->block);
    if ((st = check_rows(what, r, &kp, &nb)) != ONNXQ_OK) return st;
    const size_t n = (size_t)h->n;
    if (ldy < n) return onnxq_error(ONNXQ_E_SHAPE, "%s: ldy = %zu < n = %zu", what, ldy, n);
    if (onnxq_span(r->m, n, ldy, &need) || need > (SIZE_MAX >> 3))
        return onnxq_error(ONNXQ_E_SHAPE, "%s: size overflows", what);
    if ((st = onnxq_check_array(what, "y", y, y_len, need, 0)) != ONNXQ_OK) return st;
    if (bias != NULL && (st = onnxq_check_array(what, "bias", bias, bias_len, n, 1)) != ONNXQ_OK) return st;
    if ((st = onnxq_isa_check()) != ONNXQ_OK) return st;
    const onnxq_qd8_f32_qb4w_entry* e = onnxq_qd8_f32_qb4w_select();
    if (e == NULL) return onnxq_isa_check();
    memset(j, 0, sizeof *j);
    j->h = h, j->base = packed, j->r = r, j->bias = bias, j->y = y, j->ldy = ldy, j->fn = e->fn;
    return ONNXQ_OK;
}

int onnxq_qb4w_run_cols(const void* packed, size_t packed_size, const onnxq_qd8_rows* r,
                        const float* bias, size_t bias_len, float* y, size_t y_len, size_t ldy,
                        size_t col0, size_t cols) {
    const char* what = "qb4w_run_cols";
    qb4w_job j;
    int st = prepare(what, packed, packed_size, r, bias, bias_len, y, y_len, ldy, &j);
    if (st != ONNXQ_OK) return st;
    if (col0 % ONNXQ_QB4W_NR != 0 || col0 > j.h->n || cols > j.h->n - col0)
        return onnxq_error(ONNXQ_E_SHAPE, "%s: columns [%zu, %zu + %zu) are not a range of the %zu columns "
                           "starting at a multiple of 16", what, col0, col0, cols, (size_t)j.h->n);
    run_columns(&j, col0, col0 + cols);
    return ONNXQ_OK;
}

int onnxq_qb4w_matmul(const void* packed, size_t packed_size, const onnxq_qb4w_params* p) {
    const char* what = "qb4w_matmul";
    ONNXQ_CHECK_NOT_NULL(p, "params");
    const qb4w_header* h = NULL;
    int st = read_header(what, packed, packed_size, &h);
    if (st != ONNXQ_OK) return st;
    if (p->k != h->k || p->n != h->n)
        return onnxq_error(ONNXQ_E_SHAPE, "%s: packed weights are K=%zu x N=%zu, the caller says K=%zu x "
                           "N=%zu", what, (size_t)h->k, (size_t)h->n, p->k, p->n);
    if (p->m == 0) return onnxq_error(ONNXQ_E_SHAPE, "%s: zero-size A (m = 0)", what);
    if (p->threads > ONNXQ_CONV_MAX_THREADS)
        return onnxq_error(ONNXQ_E_ARG, "%s: threads = %zu, at most %d", what, p->threads,
                           (int)ONNXQ_CONV_MAX_THREADS);
    const size_t nb = (size_t)h->nb, kp = nb * (size_t)h->block;
    size_t qn, bn;
    if (onnxq_mul_overflow(p->m, kp, &qn) || onnxq_mul_overflow(p->m, nb, &bn) || qn > (SIZE_MAX >> 3) ||
        bn > (SIZE_MAX >> 3))
        return onnxq_error(ONNXQ_E_SHAPE, "%s: size overflows", what);
    int8_t* q = malloc(qn);
    float* scale = malloc(p->m * sizeof *scale);
    int32_t* bsum = malloc(bn * sizeof *bsum);
    onnxq_qd8_rows r = {p->m, p->k, (size_t)h->block, q, qn, scale, p->m, bsum, bn};
    qb4w_job j;
    if (q == NULL || scale == NULL || bsum == NULL) {
        st = onnxq_error(ONNXQ_E_NOMEM, "%s: cannot allocate %zu bytes of scratch", what, qn);
    } else if ((st = prepare(what, packed, packed_size, &r, p->bias, p->bias_len, p->y, p->y_len, p->ldy,
                             &j)) == ONNXQ_OK &&
               (st = onnxq_qd8_quantize_rows(p->a, p->a_len, p->lda, &r)) == ONNXQ_OK) {
        const size_t n = (size_t)h->n, panels = (n + ONNXQ_QB4W_NR - 1) / ONNXQ_QB4W_NR;
        size_t threads = p->threads < 1 ? 1 : p->threads, cpus = onnxq_conv_cpu_count();
        if (threads > cpus) threads = cpus;
        if (threads > panels) threads = panels;
        const double macs = (double)p->m * (double)kp * (double)n;
        if (macs < (double)QB4W_MIN_PARALLEL_MACS) threads = 1;
        j.col1 = n;
        if (threads <= 1) {
            run_columns(&j, 0, n);
        } else {
            const size_t tasks = panels < 4 * threads ? panels : 4 * threads;
            j.panels_per_task = (panels + tasks - 1) / tasks;
            onnxq_conv_parallel((panels + j.panels_per_task - 1) / j.panels_per_task, threads, run_task, &j);
        }
    }
    free(q);
    free(scale);
    free(bsum);
    return st;
}
