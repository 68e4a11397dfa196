/* u8s8 GEMM, AVX2, exact: 6 rows x 16 columns per step (12 ymm accumulators).
 *
 * vpmaddubsw would saturate u8 x s8 pair sums to int16, so both operands are widened to int16
 * and multiplied with vpmaddwd: per int32 lane a0 * b0 + a1 * b1 with |a| <= 255, |b| <= 128,
 * exact, then added to the int32 accumulator with vpaddd (wrapping, like every ISA).
 *
 * K runs in pairs p (K padded with zeros to a multiple of 4, the packed group size). Each call
 * widens into int16 scratch, so the inner loop does no widening:
 *   A block: aw[r * np + p] = (A[r, 2p], A[r, 2p + 1]) as two int16 in an int32, for the rows r
 *            of a block of up to A_BLOCK_BYTES (zeros past K), widened once;
 *   B panel: bw[p * 32 + c] = (B[2p, c], B[2p + 1, c]) as two int16 in an int32 lane, for the 16
 *            columns c of one packed block and the pairs of one K chunk (KC_GROUPS groups):
 *            lanes 0..7 are columns 0..7, lanes 8..15 columns 8..15; widened once per row block.
 * One step (6 rows x 16 columns), per pair: two 32-byte loads of the B panel, per row a
 * vpbroadcastd of the A pair and two vpmaddwd + vpaddd. Loop nest: row blocks (A in L2), 16-column
 * blocks, K chunks (the panel stays in L1; partial sums of the chunks before the last wait in an
 * int32 buffer), 6-row steps (the last 1..5 rows of a block run a step of that many rows).
 * Output: u8/s8 rows of 16 columns requantise both halves and narrow two rows at a time into
 * one register (two 16-byte stores), clamping in int16 / bytes (see step_finish); other cases use
 * onnxq_gemm_store8_avx2.
 *
 * Steps whose rows of A are all below 128 take vpmaddubsw instead, on the raw bytes of A and of
 * the packed block: with a in [0, 127] and b in [-128, 127], |a0 b0 + a1 b1| <= 32512 < 2^15, so
 * no pair saturates and vpmaddwd(ones) widens the pair sums exactly (32 MACs per multiply, twice
 * the int16 path; 7-bit activations). A step with a few bytes of 128 or more (activations
 * calibrated to 7 bits let rare outliers through: about 1 byte in 10^4 in a ResNet) still runs
 * vpmaddubsw, split exactly: a = (a & 127) + 128 * (a >> 7). Its rows are copied with the top bit
 * cleared into the A block, and the sparse rest, 128 * B[k, columns] for each byte k of 128 or
 * more, is added to the step's starting accumulators (bias - a_zp * colsum) before its first K
 * chunk: per byte, the 16 columns' bytes of the packed group are moved to the top of their int32
 * lanes, shifted back down arithmetically (sign extension) and multiplied by 128. Only a step with more than
 * about k / 16 such bytes (where the additions would cost more than the int16 path's extra work)
 * runs the int16 path; each row is scanned once per call, and only the rows and panels the int16
 * steps need are widened.
 *
 * Weights that packing found all in [-64, 64] (ctx->small_weights: 7-bit weights, reduce_range)
 * make vpmaddubsw exact for any u8 activations: |a0 b0 + a1 b1| <= 255 * 64 * 2 = 32640 < 2^15.
 * Then every step runs vpmaddubsw on the raw bytes, A is neither scanned nor copied and B never
 * widened (3 vector integer ops per 32 MACs, as onnxruntime's saturating U8S8 kernel, instead of
 * the int16 path's 4).
 */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "common/internal.h"
#include "gemm/avx2_prep.h"
#include "gemm/store_avx2.h"
#include "gemm/ukernel.h"

#define MR 6
#define A_BLOCK_BYTES ((size_t)256 * 1024) /* widened A rows per block: about half of L2 */
#define MIN_BLOCK_ROWS 48                  /* rows that amortise widening B once more */
#define KC_GROUPS 128                      /* K chunk: 512 of K, a 16 KB B panel (L1) */
#define MIN_PREFETCH_STEPS 8               /* small weights: prefetch only over as many steps */

/* How a 6-row step runs (the per-step flag). */
enum { STEP_INT16 = 0, STEP_U7 = 1, STEP_U7_FIX = 2 };

/* Accumulators of a step: from corr (the first K chunk; per row from init when it is not NULL)
 * or the partial sums saved in accb. */
#define STEP_START(first, init)                                                                 \
    __m256i acc0[MR], acc1[MR];                                                                 \
    if ((first) && (init) != NULL) {                                                            \
        _Pragma("GCC unroll 6") for (int r = 0; r < mrt; ++r) {                                 \
            acc0[r] = _mm256_load_si256((const __m256i*)((init) + r * 16));                     \
            acc1[r] = _mm256_load_si256((const __m256i*)((init) + r * 16 + 8));                 \
        }                                                                                       \
    } else if (first) {                                                                         \
        const __m256i c0 = _mm256_loadu_si256((const __m256i*)(ctx->corr + j * 16));            \
        const __m256i c1 = _mm256_loadu_si256((const __m256i*)(ctx->corr + j * 16 + 8));        \
        _Pragma("GCC unroll 6") for (int r = 0; r < mrt; ++r) acc0[r] = c0, acc1[r] = c1;       \
    } else {                                                                                    \
        _Pragma("GCC unroll 6") for (int r = 0; r < mrt; ++r) {                                 \
            acc0[r] = _mm256_load_si256((const __m256i*)(accb + r * 16));                       \
            acc1[r] = _mm256_load_si256((const __m256i*)(accb + r * 16 + 8));                   \
        }                                                                                       \
    }

/* The last K chunk stores the output rows, the others save the partial sums to accb. */
static inline __attribute__((always_inline)) void step_finish(const onnxq_gemm_u8s8_ctx* ctx,
                                                              __m256i* acc0, __m256i* acc1,
                                                              int32_t* accb, int last, size_t i0,
                                                              size_t j, const int mrt) {
    const size_t col = j * 16, left = ctx->n - col;
    if (last && left >= 16 && (ctx->out_type == ONNXQ_U8 || ctx->out_type == ONNXQ_S8)) {
        /* 16 bytes per row, two rows per narrowing: v = (float)acc * scale, min(v, hi), round
         * (vcvtps2dq: half to even; below -2^31 it gives INT_MIN), vpackssdw, + zero point with
         * int16 saturation, vpackuswb (u8) or vpacksswb (s8) of both rows, vpermd into row order,
         * then the clamp [qmin, qmax] on the bytes. The same bytes as clamp_round(v, lo, hi) + zp:
         * lo and hi are integers, so rounding commutes with the clamp, and every saturation on
         * the way only moves a value already past qmin or qmax further out (v is never NaN: acc
         * is finite and the scales finite and >= 0). */
        const __m256 s0 = _mm256_loadu_ps(ctx->scale + col);
        const __m256 s1 = _mm256_loadu_ps(ctx->scale + col + 8);
        const __m256 hi = _mm256_set1_ps(ctx->hi);
        const __m256i zp = _mm256_set1_epi16((short)ctx->out_zp);
        const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        const int qmin = (int)ctx->lo + ctx->out_zp, qmax = (int)ctx->hi + ctx->out_zp;
        const __m256i bmin = _mm256_set1_epi8((char)qmin), bmax = _mm256_set1_epi8((char)qmax);
        const int u8 = ctx->out_type == ONNXQ_U8;
        uint8_t* c0 = (uint8_t*)ctx->c + i0 * ctx->ldc + col;
        __m256i w[MR];
#pragma GCC unroll 6
        for (int r = 0; r < mrt; ++r) {
            const __m256 v0 = _mm256_min_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(acc0[r]), s0), hi);
            const __m256 v1 = _mm256_min_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(acc1[r]), s1), hi);
            w[r] = _mm256_adds_epi16(_mm256_packs_epi32(_mm256_cvtps_epi32(v0), _mm256_cvtps_epi32(v1)), zp);
        }
#pragma GCC unroll 3
        for (int r = 0; r < mrt; r += 2) {
            const __m256i w1 = r + 1 < mrt ? w[r + 1] : w[r];
            __m256i b = u8 ? _mm256_packus_epi16(w[r], w1) : _mm256_packs_epi16(w[r], w1);
            b = _mm256_permutevar8x32_epi32(b, order);
            b = u8 ? _mm256_min_epu8(_mm256_max_epu8(b, bmin), bmax)
                   : _mm256_min_epi8(_mm256_max_epi8(b, bmin), bmax);
            _mm_storeu_si128((__m128i*)(c0 + (size_t)r * ctx->ldc), _mm256_castsi256_si128(b));
            if (r + 1 < mrt)
                _mm_storeu_si128((__m128i*)(c0 + (size_t)(r + 1) * ctx->ldc),
                                 _mm256_extracti128_si256(b, 1));
        }
    } else if (last) {
#pragma GCC unroll 6
        for (int r = 0; r < mrt; ++r) {
            onnxq_gemm_store8_avx2(ctx, acc0[r], i0 + r, col, left);
            if (left > 8) onnxq_gemm_store8_avx2(ctx, acc1[r], i0 + r, col + 8, left - 8);
        }
    } else {
#pragma GCC unroll 6
        for (int r = 0; r < mrt; ++r) {
            _mm256_store_si256((__m256i*)(accb + r * 16), acc0[r]);
            _mm256_store_si256((__m256i*)(accb + r * 16 + 8), acc1[r]);
        }
    }
}

/* One step, int16 path: rows aw[0 .. mrt) (np2 pairs each, lda pairs apart) x the 16 columns of
 * block j, over the pairs of one K chunk (B panel bw). mrt is a constant at every call site, so
 * each inlines to its own kernel. */
static inline __attribute__((always_inline)) void tile(const onnxq_gemm_u8s8_ctx* ctx,
                                                       const int32_t* aw, size_t lda, size_t np2,
                                                       const int16_t* bw, int32_t* accb,
                                                       int first, int last, size_t i0, size_t j,
                                                       const int mrt) {
    STEP_START(first, (const int32_t*)NULL)
#pragma GCC unroll 2
    for (size_t p = 0; p < np2; ++p) {
        const __m256i b0 = _mm256_load_si256((const __m256i*)(bw + p * 32));
        const __m256i b1 = _mm256_load_si256((const __m256i*)(bw + p * 32 + 16));
#pragma GCC unroll 6
        for (int r = 0; r < mrt; ++r) {
            const __m256i va = _mm256_set1_epi32(aw[(size_t)r * lda + p]);
            acc0[r] = _mm256_add_epi32(acc0[r], _mm256_madd_epi16(va, b0));
            acc1[r] = _mm256_add_epi32(acc1[r], _mm256_madd_epi16(va, b1));
        }
    }
    step_finish(ctx, acc0, acc1, accb, last, i0, j, mrt);
}

/* One step, vpmaddubsw path (rows of A below 128): rows a[0 .. mrt) (lda bytes apart) x the
 * 16 columns of packed block b, over the 4-deep groups [g0, g0 + gc) of K; init (or NULL) as in
 * STEP_START. */
static inline __attribute__((always_inline)) void tile_u7(const onnxq_gemm_u8s8_ctx* ctx,
                                                          const uint8_t* a, size_t lda,
                                                          const int8_t* b, size_t g0, size_t gc,
                                                          const int32_t* init, int32_t* accb,
                                                          int first, int last, size_t i0,
                                                          size_t j, const int mrt) {
    STEP_START(first, init)
    const __m256i ones = _mm256_set1_epi16(1);
    const size_t k = ctx->k, full_groups = k / 4 > g0 ? k / 4 - g0 : 0;
    const size_t full = full_groups < gc ? full_groups : gc; /* groups with 4 bytes of every row */
    const uint8_t* a4 = a + 4 * g0;
    const int8_t* bg = b + g0 * 64;
    /* One half of the block at a time: 12 accumulators, ones, B, A and the product fit the 16
     * ymm registers (both halves at once spill); A's 4 bytes are broadcast twice, from memory. */
#pragma GCC unroll 2
    for (size_t g = 0; g < full; ++g, a4 += 4, bg += 64) {
        const __m256i b0 = _mm256_loadu_si256((const __m256i*)bg);
#pragma GCC unroll 6
        for (int r = 0; r < mrt; ++r) {
            int32_t v;
            memcpy(&v, a4 + (size_t)r * lda, 4);
            acc0[r] = _mm256_add_epi32(acc0[r], _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi32(v), b0), ones));
        }
        const __m256i b1 = _mm256_loadu_si256((const __m256i*)(bg + 32));
#pragma GCC unroll 6
        for (int r = 0; r < mrt; ++r) {
            int32_t v;
            memcpy(&v, a4 + (size_t)r * lda, 4);
            acc1[r] = _mm256_add_epi32(acc1[r], _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi32(v), b1), ones));
        }
    }
    if (full < gc) { /* K's last group: zeros past k, never read */
        const __m256i b0 = _mm256_loadu_si256((const __m256i*)bg);
        const __m256i b1 = _mm256_loadu_si256((const __m256i*)(bg + 32));
#pragma GCC unroll 6
        for (int r = 0; r < mrt; ++r) {
            const __m256i va = _mm256_set1_epi32((int)onnxq_gemm_load_a4(a + (size_t)r * lda, k, g0 + full));
            acc0[r] = _mm256_add_epi32(acc0[r], _mm256_madd_epi16(_mm256_maddubs_epi16(va, b0), ones));
            acc1[r] = _mm256_add_epi32(acc1[r], _mm256_madd_epi16(_mm256_maddubs_epi16(va, b1), ones));
        }
    }
    step_finish(ctx, acc0, acc1, accb, last, i0, j, mrt);
}
#undef STEP_START

/* tile with 1..6 rows, each its own function: inlined into the driver, gcc spills accumulators. */
typedef void step_fn(const onnxq_gemm_u8s8_ctx* ctx, const int32_t* aw, size_t lda, size_t np2,
                     const int16_t* bw, int32_t* accb, int first, int last, size_t i0, size_t j);
#define STEP(R)                                                                                \
    static void step_##R(const onnxq_gemm_u8s8_ctx* ctx, const int32_t* aw, size_t lda,         \
                         size_t np2, const int16_t* bw, int32_t* accb, int first, int last,     \
                         size_t i0, size_t j) {                                                 \
        tile(ctx, aw, lda, np2, bw, accb, first, last, i0, j, R);                               \
    }
STEP(1)
STEP(2)
STEP(3)
STEP(4)
STEP(5)
STEP(6)
static step_fn* const steps[MR + 1] = {NULL, step_1, step_2, step_3, step_4, step_5, step_6};

typedef void step_u7_fn(const onnxq_gemm_u8s8_ctx* ctx, const uint8_t* a, size_t lda,
                        const int8_t* b, size_t g0, size_t gc, const int32_t* init, int32_t* accb,
                        int first, int last, size_t i0, size_t j);
#define STEP_U7(R)                                                                             \
    static void step_u7_##R(const onnxq_gemm_u8s8_ctx* ctx, const uint8_t* a, size_t lda,       \
                            const int8_t* b, size_t g0, size_t gc, const int32_t* init,         \
                            int32_t* accb, int first, int last, size_t i0, size_t j) {          \
        tile_u7(ctx, a, lda, b, g0, gc, init, accb, first, last, i0, j, R);                     \
    }
STEP_U7(1)
STEP_U7(2)
STEP_U7(3)
STEP_U7(4)
STEP_U7(5)
STEP_U7(6)
static step_u7_fn* const steps_u7[MR + 1] = {NULL,        step_u7_1, step_u7_2, step_u7_3,
                                             step_u7_4, step_u7_5, step_u7_6};

int onnxq_gemm_u8s8_ukernel_6x16c4__avx2(const onnxq_gemm_u8s8_ctx* ctx, const uint8_t* a,
                                         size_t lda, size_t m) {
    const size_t k = ctx->k, ng = (k + 3) / 4, np = 2 * ng;
    /* Row blocks of about A_BLOCK_BYTES widened, equal but for the last, multiples of MR rows,
     * and of at least MIN_BLOCK_ROWS rows when m allows (each block widens all of B again). */
    size_t mc = A_BLOCK_BYTES / (np * 4);
    if (mc < MR) mc = MR;
    size_t blocks = (m + mc - 1) / mc;
    const size_t max_blocks = m / MIN_BLOCK_ROWS > 1 ? m / MIN_BLOCK_ROWS : 1;
    if (blocks > max_blocks) blocks = max_blocks;
    mc = ((m + blocks - 1) / blocks + MR - 1) / MR * MR;
    if (mc > m) mc = m;
    const size_t kcg = ng < KC_GROUPS ? ng : KC_GROUPS;
    const size_t cap = onnxq_avx2_fix_cap(k), nsteps = (mc + MR - 1) / MR;
    /* A block (mc rows of np int32: widened rows of the int16 steps, top-bit-cleared bytes of the
     * fixed-up ones), partial sums (mc rows of 16 int32), B panel (kcg groups of 64 int16), the
     * starting accumulators of one fixed-up step (MR rows of 16 int32), each 64-byte aligned; then
     * per step its high-byte positions (cap uint32), their row offsets (MR + 1 uint32) and its
     * flag (STEP_*). */
    size_t a_bytes, pos_bytes, total;
    if (onnxq_mul_overflow(mc * 4, np, &a_bytes) || a_bytes > SIZE_MAX / 4 ||
        onnxq_mul_overflow(nsteps * 4, cap, &pos_bytes) || pos_bytes > SIZE_MAX / 4)
        return onnxq_error(ONNXQ_E_NOMEM, "gemm (avx2): scratch size overflows for k=%zu", k);
    const size_t acc_off = onnxq_round_up(a_bytes, 64), b_off = acc_off + mc * 64;
    const size_t init_off = b_off + kcg * 128, pos_off = init_off + MR * 64;
    const size_t roff_off = pos_off + pos_bytes, flag_off = roff_off + nsteps * (MR + 1) * 4;
    total = onnxq_round_up(flag_off + nsteps, 64); /* aligned_alloc wants a multiple */
    uint8_t* mem = (uint8_t*)aligned_alloc(64, total);
    if (mem == NULL)
        return onnxq_error(ONNXQ_E_NOMEM, "gemm (avx2): cannot allocate %zu bytes", total);
    int32_t* aw = (int32_t*)mem;
    int32_t* accb = (int32_t*)(mem + acc_off);
    int16_t* bw = (int16_t*)(mem + b_off);
    int32_t* init = (int32_t*)(mem + init_off);
    uint32_t* pos = (uint32_t*)(mem + pos_off);
    uint32_t* roff = (uint32_t*)(mem + roff_off);
    uint8_t* flag = mem + flag_off;
    for (size_t ib = 0; ib < m; ib += mc) {
        const size_t rows = m - ib < mc ? m - ib : mc;
        int any_int16 = 0; /* some step needs the widened B panel */
        for (size_t i = 0; i < rows; i += MR) {
            const size_t mrt = rows - i < MR ? rows - i : MR, s = i / MR;
            if (ctx->small_weights) { /* weights in [-64, 64]: no u8 row can saturate a pair */
                flag[s] = STEP_U7;
                continue;
            }
            size_t high = 0;
            for (size_t r = 0; r < mrt && high <= cap; ++r)
                high += onnxq_avx2_row_high_count(a + (ib + i + r) * lda, k, cap - high);
            if (high == 0) {
                flag[s] = STEP_U7;
            } else if (high <= cap) {
                flag[s] = STEP_U7_FIX;
                uint32_t* off = roff + s * (MR + 1);
                off[0] = 0;
                for (size_t r = 0; r < mrt; ++r)
                    off[r + 1] = off[r] + (uint32_t)onnxq_avx2_split_row(a + (ib + i + r) * lda, k,
                                                              (uint8_t*)(aw + (i + r) * np),
                                                              pos + s * cap + off[r]);
            } else {
                flag[s] = STEP_INT16;
                any_int16 = 1;
                for (size_t r = 0; r < mrt; ++r)
                    onnxq_avx2_widen_a_row(a + (ib + i + r) * lda, k, np, aw + (i + r) * np);
            }
        }
        for (size_t j = 0; j < ctx->nb; ++j) {
            const int8_t* block = ctx->w + j * ctx->kq * 64;
            for (size_t g0 = 0; g0 < ng; g0 += kcg) {
                const size_t gc = ng - g0 < kcg ? ng - g0 : kcg, np2 = 2 * gc;
                const int first = g0 == 0, last = g0 + gc == ng;
                if (any_int16) onnxq_avx2_widen_b_panel(block + g0 * 64, gc, bw);
                /* The next panel's packed bytes (from memory when B exceeds the caches) are
                 * prefetched into L2 a slice per step, while this panel's steps compute. */
                const int8_t* next = NULL;
                size_t next_lines = 0, per_step = 0, pf = 0;
                if (g0 + gc < ng) {
                    next = block + (g0 + gc) * 64;
                    next_lines = ng - g0 - gc < kcg ? ng - g0 - gc : kcg;
                } else if (j + 1 < ctx->nb) {
                    next = block + ctx->kq * 64;
                    next_lines = kcg;
                }
                /* ... but not in bursts on the vpmaddubsw-only path (small weights), which reads
                 * the packed bytes in order: with fewer than MIN_PREFETCH_STEPS steps (an LSTM's
                 * recurrent matrix-vector product at batch 1: 128 prefetches per block) the
                 * hardware prefetcher alone was faster: bench_dynamic's LSTM 13.2-13.5 ms of CPU
                 * time per run against 15.2-16.1 (loaded machine). */
                const size_t nst = (rows + MR - 1) / MR;
                if (next != NULL && (!ctx->small_weights || nst >= MIN_PREFETCH_STEPS))
                    per_step = (next_lines + nst - 1) / nst;
                for (size_t i = 0; i < rows; i += MR) {
                    const size_t mrt = rows - i < MR ? rows - i : MR, s = i / MR;
                    for (size_t e = 0; e < per_step && pf < next_lines; ++e, ++pf)
                        _mm_prefetch((const char*)(next + pf * 64), _MM_HINT_T1);
                    if (flag[s] == STEP_U7) {
                        steps_u7[mrt](ctx, a + (ib + i) * lda, lda, block, g0, gc, NULL,
                                      accb + i * 16, first, last, ib + i, j);
                    } else if (flag[s] == STEP_U7_FIX) {
                        if (first)
                            onnxq_avx2_fixup_init(ctx->corr + j * 16, block, pos + s * cap,
                                       roff + s * (MR + 1), mrt, init);
                        steps_u7[mrt](ctx, (const uint8_t*)(aw + i * np), np * 4, block, g0, gc,
                                      first ? init : NULL, accb + i * 16, first, last, ib + i, j);
                    } else {
                        steps[mrt](ctx, aw + i * np + 2 * g0, np, np2, bw, accb + i * 16, first,
                                   last, ib + i, j);
                    }
                }
            }
        }
    }
    free(mem);
    return ONNXQ_OK;
}
#endif /* __x86_64__ */
