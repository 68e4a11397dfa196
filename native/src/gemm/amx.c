/* u8s8 GEMM, AMX-INT8: 32 rows x 32 columns per step with four 16x16 int32 tiles (tdpbusd).
 *
 * Tiles: C in tmm0..3, A rows 0-15 / 16-31 in tmm4/5 (16 rows x 64 bytes of K), B blocks j / j+1
 * in tmm6/7 (16 groups of 4 K x 16 columns = 1 KiB, read straight from the packed buffer, whose K
 * is padded to 64). Rows go in blocks of about 512 KiB of A; for each block, every pair of B
 * blocks is loaded once and reused over the block's 32-row steps. 32-row tiles of A are
 * tile-loaded in place when that cannot read past A (see rows_in_place: K a multiple of 64, or
 * K padded to 64 at most lda + K and not the last tile); the other rows are first copied into a
 * zero-padded panel.
 * The int32 tiles go through a 4 KiB buffer to the AVX-512 output stage (one narrowing store
 * per row and pair of blocks, see store_avx512.h). The tile state is
 * configured at entry and released at exit; permission to use it was obtained at detection.
 */
#if defined(__x86_64__)
#pragma GCC target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "common/internal.h"
#include "gemm/store_avx512.h"
#include "gemm/ukernel.h"
#include "onnxq_kernels.h"

#define MR 32
#define SMALL_M 8 /* fewer rows go to the AVX-512 VNNI kernel */

typedef struct tile_config {
    uint8_t palette_id;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

static void configure_tiles(void) {
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette_id = 1;
    for (int t = 0; t < 8; ++t) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
}

/* Copies rows [i, i + mb) of A (k bytes each) into panel[round_up(mb, 32)][kp], zero padded. */
static void copy_panel(uint8_t* panel, const uint8_t* a, size_t lda, size_t i, size_t mb,
                       size_t k, size_t kp) {
    const size_t rows = onnxq_round_up(mb, MR);
    for (size_t r = 0; r < rows; ++r) {
        uint8_t* dst = panel + r * kp;
        if (r < mb) {
            memcpy(dst, a + (i + r) * lda, k);
            memset(dst + k, 0, kp - k);
        } else {
            memset(dst, 0, kp);
        }
    }
}

static void store_block(const onnxq_gemm_u8s8_ctx* ctx, const onnxq_gemm_out_avx512* oc,
                        const int32_t* buf, size_t i, size_t mr, size_t j, int two) {
    const size_t col0 = j * 16, cnt = ctx->n - col0;
    const __m512i c0 = _mm512_loadu_si512(ctx->corr + col0);
    const __m512i c1 = two ? _mm512_loadu_si512(ctx->corr + col0 + 16) : c0;
    for (size_t r = 0; r < mr; ++r) {
        const __m512i acc[2] = {_mm512_add_epi32(_mm512_load_si512(buf + r * 32), c0),
                                _mm512_add_epi32(_mm512_load_si512(buf + r * 32 + 16), c1)};
        if (two)
            onnxq_gemm_store_row_avx512(ctx, oc, acc, i + r, col0, cnt, 2);
        else
            onnxq_gemm_store_row_avx512(ctx, oc, acc, i + r, col0, cnt, 1);
    }
}

/* 32 rows at ap (as bytes apart) x blocks j, j+1 -> buf[32][32] int32 (no correction). */
static inline void tile_32x32(const int8_t* b0, const int8_t* b1, const uint8_t* ap, size_t as,
                              size_t chunks, int32_t* buf) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (size_t c = 0; c < chunks; ++c) {
        _tile_loadd(4, ap + c * 64, as);
        _tile_loadd(5, ap + 16 * as + c * 64, as);
        _tile_loadd(6, b0 + c * 1024, 64);
        _tile_loadd(7, b1 + c * 1024, 64);
        _tile_dpbusd(0, 4, 6);
        _tile_dpbusd(1, 4, 7);
        _tile_dpbusd(2, 5, 6);
        _tile_dpbusd(3, 5, 7);
    }
    _tile_stored(0, buf, 128);
    _tile_stored(1, buf + 16, 128);
    _tile_stored(2, buf + 16 * 32, 128);
    _tile_stored(3, buf + 16 * 32 + 16, 128);
}

/* Rows at the start of block [ib, ib + mb) whose 32-row tiles can be tile-loaded from A itself.
 * A tile reads kp bytes per row. That stays inside A when K == kp, or when another row follows
 * the tile and kp <= lda + k (a row's bytes past K then belong to the gap or to the next row, e.g.
 * a 1x1 conv's next pixel; they meet B's zero padding, so they add exactly 0). */
static size_t rows_in_place(size_t ib, size_t mb, size_t m, size_t k, size_t kp, size_t lda) {
    const size_t whole = mb / MR * MR;
    if (k == kp) return whole;
    if (kp > lda + k || m - ib <= MR) return 0;
    const size_t safe = (m - 1 - ib) / MR * MR; /* tiles ending before the last row of A */
    return safe < whole ? safe : whole;
}

int onnxq_gemm_u8s8_ukernel_32x32c64__amx(const onnxq_gemm_u8s8_ctx* ctx, const uint8_t* a,
                                          size_t lda, size_t m) {
    /* A 32-row tile is mostly padding for a few rows: AMX implies AVX-512 VNNI, use it. */
    if (m < SMALL_M) return onnxq_gemm_u8s8_ukernel_8x48c4__avx512vnni(ctx, a, lda, m);
    const size_t k = ctx->k, kp = ctx->kq * 4, chunks = kp / 64, stride = ctx->kq * 64;
    /* Row blocks of about 512 KiB of A: one pair of B panels is reused across a whole block. */
    size_t mc = ((size_t)512 * 1024 / kp) / MR * MR;
    if (mc < MR) mc = MR;
    if (mc > onnxq_round_up(m, MR)) mc = onnxq_round_up(m, MR);
    uint8_t* panel = NULL;
    if (rows_in_place(0, m, m, k, kp, lda) < m) {
        panel = (uint8_t*)aligned_alloc(64, mc * kp);
        if (panel == NULL)
            return onnxq_error(ONNXQ_E_NOMEM, "gemm (amx): cannot allocate %zu bytes", mc * kp);
    }
    int32_t buf[MR * 32] __attribute__((aligned(64)));
    onnxq_gemm_out_avx512 oc;
    onnxq_gemm_out_init_avx512(ctx, &oc);
    configure_tiles();
    for (size_t ib = 0; ib < m; ib += mc) {
        const size_t mb = m - ib < mc ? m - ib : mc;
        const size_t direct = rows_in_place(ib, mb, m, k, kp, lda);
        if (direct < mb) copy_panel(panel, a, lda, ib + direct, mb - direct, k, kp);
        for (size_t j = 0; j < ctx->nb; j += 2) {
            const int two = j + 1 < ctx->nb;
            const int8_t* b0 = ctx->w + j * stride;
            const int8_t* b1 = two ? b0 + stride : b0;
            for (size_t i = 0; i < mb; i += MR) {
                if (i < direct)
                    tile_32x32(b0, b1, a + (ib + i) * lda, lda, chunks, buf);
                else
                    tile_32x32(b0, b1, panel + (i - direct) * kp, kp, chunks, buf);
                store_block(ctx, &oc, buf, ib + i, mb - i < MR ? mb - i : MR, j, two);
            }
        }
    }
    _tile_release();
    free(panel);
    return ONNXQ_OK;
}
#endif /* __x86_64__ */
