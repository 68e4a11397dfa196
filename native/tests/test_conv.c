/* conv family: every ISA bit-exact with a direct-loop reference (and so with scalar) on random
 * shapes and edge cases (1x1, 7x7, odd sizes, strides, dilations, depthwise, groups, zero points
 * 0/128/255, saturation, fused clamp, threads), and bad input returning an error status. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "conv/conv_internal.h"
#include "onnxq/conv.h"
#include "test_util.h"

typedef struct conv_case {
    size_t n, h, w, c, o, kh, kw, groups, sh, sw, dh, dw, pt, pl, pb, pr;
    int x_zp, y_zp, qmin, qmax;
    float y_scale;
    size_t threads;
} conv_case;

/* Direct loops over the definition in onnxq/conv.h (wrapping int32 sums, MLAS requantisation). */
static void naive_conv(const conv_case* k, const uint8_t* x, const int8_t* w, const int32_t* bias,
                       const float* scale, size_t oh, size_t ow, uint8_t* y) {
    const size_t cg = k->c / k->groups, og = k->o / k->groups;
    const float lo = (float)(k->qmin - k->y_zp), hi = (float)(k->qmax - k->y_zp);
    for (size_t b = 0; b < k->n; ++b)
        for (size_t oy = 0; oy < oh; ++oy)
            for (size_t ox = 0; ox < ow; ++ox)
                for (size_t o = 0; o < k->o; ++o) {
                    const size_t g = o / og;
                    uint32_t acc = (uint32_t)bias[o];
                    for (size_t i = 0; i < k->kh; ++i)
                        for (size_t j = 0; j < k->kw; ++j) {
                            const long iy = (long)(oy * k->sh + i * k->dh) - (long)k->pt;
                            const long ix = (long)(ox * k->sw + j * k->dw) - (long)k->pl;
                            if (iy < 0 || ix < 0 || iy >= (long)k->h || ix >= (long)k->w) continue;
                            const uint8_t* px = x + ((b * k->h + (size_t)iy) * k->w + (size_t)ix) * k->c;
                            for (size_t ci = 0; ci < cg; ++ci) {
                                const int32_t xv = (int32_t)px[g * cg + ci] - k->x_zp;
                                const int32_t wv = w[((o * cg + ci) * k->kh + i) * k->kw + j];
                                acc += (uint32_t)(xv * wv);
                            }
                        }
                    float v = (float)(int32_t)acc * scale[o];
                    v = v >= lo ? v : lo;
                    v = v <= hi ? v : hi;
                    y[((b * oh + oy) * ow + ox) * k->o + o] = (uint8_t)((int32_t)nearbyintf(v) + k->y_zp);
                }
}

static onnxq_conv_params params_of(const conv_case* k) {
    onnxq_conv_params p;
    memset(&p, 0, sizeof p);
    p.w.out_c = k->o, p.w.in_c = k->c, p.w.groups = k->groups, p.w.kernel_h = k->kh;
    p.w.kernel_w = k->kw;
    p.batch = k->n, p.in_h = k->h, p.in_w = k->w, p.stride_h = k->sh, p.stride_w = k->sw;
    p.dilation_h = k->dh, p.dilation_w = k->dw;
    p.pad_top = k->pt, p.pad_left = k->pl, p.pad_bottom = k->pb, p.pad_right = k->pr;
    p.x_zp = (uint8_t)k->x_zp, p.y_zp = (uint8_t)k->y_zp, p.qmin = (uint8_t)k->qmin;
    p.qmax = (uint8_t)k->qmax, p.threads = k->threads;
    return p;
}

static void check_case(const conv_case* k) {
    onnxq_conv_params p = params_of(k);
    size_t oh = 0, ow = 0, packed_size = 0;
    if (onnxq_conv_output_size(&p, &oh, &ow) != ONNXQ_OK) {
        ONNXQ_EXPECT(0, "output size: %s", onnxq_last_error());
        return;
    }
    const size_t xn = k->n * k->h * k->w * k->c, wn = k->o * (k->c / k->groups) * k->kh * k->kw;
    const size_t yn = k->n * oh * ow * k->o;
    uint8_t* x = malloc(xn);
    int8_t* w = malloc(wn);
    int32_t* bias = malloc(k->o * sizeof *bias);
    float* scale = malloc(k->o * sizeof *scale);
    uint8_t* want = malloc(yn);
    uint8_t* got = malloc(yn);
    onnxq_test_fill_u8(x, xn, 0, 255);
    onnxq_test_fill_s8(w, wn, -128, 127);
    for (size_t o = 0; o < k->o; ++o) {
        bias[o] = onnxq_test_rand_int(-40000, 40000);
        scale[o] = 0.02f * onnxq_test_rand_float(0.001f, 0.01f) / k->y_scale;
    }
    naive_conv(k, x, w, bias, scale, oh, ow, want);
    ONNXQ_EXPECT(onnxq_conv_packed_size(&p.w, &packed_size) == ONNXQ_OK, "packed size: %s",
                 onnxq_last_error());
    void* packed = aligned_alloc(64, (packed_size + 63) / 64 * 64);
    ONNXQ_EXPECT(onnxq_conv_pack(&p.w, w, wn, bias, k->o, scale, k->o, packed, packed_size) == ONNXQ_OK,
                 "pack: %s", onnxq_last_error());
    ONNXQ_TEST_FOREACH_ISA(isa) {
        memset(got, 0xa5, yn);
        const int st = onnxq_conv_run(&p, packed, packed_size, x, xn, got, yn);
        ONNXQ_EXPECT(st == ONNXQ_OK, "run: %s", onnxq_last_error());
        ONNXQ_EXPECT(memcmp(got, want, yn) == 0,
                     "conv %zux%zux%zux%zu -> %zu k%zux%zu g%zu s%zu,%zu d%zu,%zu zp %d/%d differs"
                     " (%s)", k->n, k->h, k->w, k->c, k->o, k->kh, k->kw, k->groups, k->sh, k->sw,
                     k->dh, k->dw, k->x_zp, k->y_zp, onnxq_conv_algorithm(&p));
        if (k->groups != 1) continue;
        /* onnxq_conv_run_cols in ranges of 32 output channels: the same bytes, each range
         * written by its own call only */
        memset(got, 0xa5, yn);
        for (size_t c0 = 0; c0 < k->o; c0 += 32) {
            const size_t cols = k->o - c0 < 32 ? k->o - c0 : 32;
            ONNXQ_EXPECT(onnxq_conv_run_cols(&p, packed, packed_size, x, xn, got, yn, c0, cols) ==
                             ONNXQ_OK, "run_cols: %s", onnxq_last_error());
            int untouched = 1;
            for (size_t px = 0; px < yn / k->o; ++px)
                for (size_t o = c0 + cols; o < k->o; ++o) untouched &= got[px * k->o + o] == 0xa5;
            ONNXQ_EXPECT(untouched, "run_cols [%zu, %zu) wrote channels past its range", c0,
                         c0 + cols);
        }
        ONNXQ_EXPECT(memcmp(got, want, yn) == 0, "conv run_cols %zux%zux%zux%zu -> %zu k%zux%zu "
                     "differs", k->n, k->h, k->w, k->c, k->o, k->kh, k->kw);
    }
    free(packed), free(x), free(w), free(bias), free(scale), free(want), free(got);
}

static conv_case base_case(size_t h, size_t w, size_t c, size_t o, size_t k, size_t groups) {
    conv_case kc = {1, h, w, c, o, k, k, groups, 1, 1, 1, 1, k / 2, k / 2, k / 2, k / 2,
                    128, 128, 0, 255, 0.05f, 1};
    return kc;
}

static void check_edge_cases(void) {
    conv_case k = base_case(5, 7, 37, 45, 1, 1); /* 1x1 direct */
    check_case(&k);
    k = base_case(9, 9, 24, 40, 1, 1), k.sh = k.sw = 2; /* 1x1 / 2 */
    check_case(&k);
    k = base_case(23, 21, 3, 17, 7, 1), k.sh = k.sw = 2; /* 7x7 / 2 stem */
    check_case(&k);
    k = base_case(9, 11, 64, 70, 3, 1); /* odd spatial, N not a tile multiple */
    check_case(&k);
    k = base_case(11, 10, 9, 33, 3, 1), k.dh = k.dw = 2, k.pt = k.pl = k.pb = k.pr = 2;
    check_case(&k);
    k = base_case(7, 7, 32, 24, 3, 4); /* grouped */
    check_case(&k);
    k = base_case(13, 11, 37, 37, 3, 37), k.sh = k.sw = 2; /* depthwise, odd channels */
    check_case(&k);
    k = base_case(15, 16, 19, 19, 7, 19), k.dh = k.dw = 2; /* depthwise 7x7 dilated */
    check_case(&k);
    k = base_case(6, 6, 8, 16, 3, 8); /* channel multiplier 2 */
    check_case(&k);
    /* Large enough (>= 4M MACs per thread) for the conv to really use the threads. */
    k = base_case(24, 23, 64, 70, 3, 1), k.threads = 3;
    check_case(&k);
    k = base_case(31, 30, 64, 64, 1, 1), k.threads = 2, k.pt = k.pl = k.pb = k.pr = 0;
    check_case(&k);
    k = base_case(40, 39, 600, 600, 3, 600), k.threads = 2;
    check_case(&k);
    static const int zps[] = {0, 128, 255};
    for (int a = 0; a < 3; ++a)
        for (int b = 0; b < 3; ++b) {
            k = base_case(6, 5, 16, 16, 3, (a + b) % 2 ? 16 : 1);
            k.x_zp = zps[a], k.y_zp = zps[b];
            check_case(&k);
        }
    k = base_case(6, 6, 24, 24, 3, 1), k.y_scale = 1e-4f, k.y_zp = 100; /* saturation */
    check_case(&k);
    k = base_case(6, 6, 24, 24, 3, 24), k.y_scale = 1e-4f, k.y_zp = 100;
    check_case(&k);
    k = base_case(7, 7, 32, 32, 3, 32), k.y_zp = 90, k.qmin = 90, k.qmax = 210; /* ReLU6-like */
    check_case(&k);
}

static void check_random_cases(int count) {
    for (int t = 0; t < count; ++t) {
        const int depthwise = onnxq_test_rand_int(0, 1);
        const size_t groups = depthwise ? (size_t)onnxq_test_rand_int(1, 200)
                                        : (size_t)onnxq_test_rand_int(1, 3);
        const size_t cg = depthwise ? 1 : (size_t)onnxq_test_rand_int(1, 20);
        const size_t og = depthwise ? 1 : (size_t)onnxq_test_rand_int(1, 40);
        conv_case k = base_case(0, 0, cg * groups, og * groups, 1, groups);
        k.n = (size_t)onnxq_test_rand_int(1, 2);
        k.kh = (size_t)onnxq_test_rand_int(1, 4), k.kw = (size_t)onnxq_test_rand_int(1, 4);
        k.dh = (size_t)onnxq_test_rand_int(1, 2), k.dw = (size_t)onnxq_test_rand_int(1, 2);
        k.sh = (size_t)onnxq_test_rand_int(1, 3), k.sw = (size_t)onnxq_test_rand_int(1, 3);
        k.pt = (size_t)onnxq_test_rand_int(0, 2), k.pl = (size_t)onnxq_test_rand_int(0, 2);
        k.pb = (size_t)onnxq_test_rand_int(0, 2), k.pr = (size_t)onnxq_test_rand_int(0, 2);
        const size_t eh = k.dh * (k.kh - 1) + 1, ew = k.dw * (k.kw - 1) + 1;
        k.h = (eh > k.pt + k.pb ? eh - k.pt - k.pb : 1) + (size_t)onnxq_test_rand_int(0, 8);
        k.w = (ew > k.pl + k.pr ? ew - k.pl - k.pr : 1) + (size_t)onnxq_test_rand_int(0, 8);
        k.x_zp = onnxq_test_rand_int(0, 255), k.y_zp = onnxq_test_rand_int(0, 255);
        k.threads = (size_t)onnxq_test_rand_int(1, 3);
        check_case(&k);
    }
}

static void expect_error(const onnxq_conv_params* p, const void* packed, size_t packed_size,
                         size_t xn, size_t yn, int status, const char* what) {
    uint8_t x[4096], y[4096];
    memset(x, 0, sizeof x);
    memset(y, 0x5a, sizeof y);
    const int st = onnxq_conv_run(p, packed, packed_size, x, xn, y, yn);
    /* status -1: any error status */
    ONNXQ_EXPECT(status < 0 ? st != ONNXQ_OK : st == status, "%s: status %d (%s), expected %d",
                 what, st, onnxq_last_error(), status);
    if (status == ONNXQ_OK || st == ONNXQ_OK) return;
    int untouched = 1;
    for (size_t i = 0; i < sizeof y; ++i) untouched &= y[i] == 0x5a;
    ONNXQ_EXPECT(untouched, "%s: output written on error", what);
}

static void check_bad_input(void) {
    conv_case k = base_case(5, 5, 8, 8, 3, 1);
    onnxq_conv_params p = params_of(&k);
    size_t size = 0;
    int8_t w[8 * 8 * 9];
    float scale = 0.01f;
    memset(w, 1, sizeof w);
    onnxq_conv_packed_size(&p.w, &size);
    void* packed = aligned_alloc(64, (size + 63) / 64 * 64);
    ONNXQ_EXPECT(onnxq_conv_pack(&p.w, w, sizeof w, NULL, 0, &scale, 1, packed, size) == ONNXQ_OK,
                 "pack: %s", onnxq_last_error());
    expect_error(&p, packed, size, 200, 200, ONNXQ_OK, "valid call");
    onnxq_conv_params q = p;
    q.pad_top = q.pad_left = q.pad_bottom = q.pad_right = 0, q.in_h = 2;
    expect_error(&q, packed, size, 2 * 5 * 8, 200, ONNXQ_E_SHAPE, "kernel larger than input");
    q = p, q.batch = 0;
    expect_error(&q, packed, size, 0, 0, ONNXQ_E_SHAPE, "zero batch");
    q = p, q.w.groups = 3;
    expect_error(&q, packed, size, 200, 200, ONNXQ_E_SHAPE, "groups not dividing channels");
    q = p, q.w.in_c = 4;
    expect_error(&q, packed, size, 100, 200, ONNXQ_E_SHAPE, "params disagree with packed");
    expect_error(&p, packed, size, 199, 200, ONNXQ_E_SHAPE, "input length mismatch");
    expect_error(&p, packed, size, 200, 201, ONNXQ_E_SHAPE, "output length mismatch");
    expect_error(&p, packed, 16, 200, 200, ONNXQ_E_ARG, "truncated packed");
    q = p, q.stride_h = 0;
    expect_error(&q, packed, size, 200, 200, ONNXQ_E_ARG, "zero stride");
    q = p, q.qmin = 200, q.qmax = 100;
    expect_error(&q, packed, size, 200, 200, ONNXQ_E_ARG, "qmin > qmax");
    q = p, q.in_h = (size_t)1 << 40;
    expect_error(&q, packed, size, 200, 200, ONNXQ_E_SHAPE, "huge input");
    expect_error(&p, NULL, size, 200, 200, ONNXQ_E_ARG, "NULL packed");
    q = p, q.threads = ONNXQ_CONV_MAX_THREADS + 1;
    expect_error(&q, packed, size, 200, 200, ONNXQ_E_ARG, "threads above the maximum");
    q = p, q.threads = ONNXQ_CONV_MAX_THREADS;
    expect_error(&q, packed, size, 200, 200, ONNXQ_OK, "threads at the maximum");
    int32_t bias[8] = {0};
    ONNXQ_EXPECT(onnxq_conv_pack(&p.w, w, sizeof w, bias, 7, &scale, 1, packed, size) == ONNXQ_E_SHAPE,
                 "pack with a short bias");
    memset(packed, 0, 8);
    expect_error(&p, packed, size, 200, 200, ONNXQ_E_ARG, "corrupt packed");
    onnxq_conv_weights_params wp = p.w;
    wp.groups = 3;
    ONNXQ_EXPECT(onnxq_conv_pack(&wp, w, sizeof w, NULL, 0, &scale, 1, packed, size) == ONNXQ_E_SHAPE,
                 "pack with bad groups");
    ONNXQ_EXPECT(onnxq_conv_pack(&p.w, w, sizeof w - 1, NULL, 0, &scale, 1, packed, size) ==
                     ONNXQ_E_SHAPE, "pack with short weights");
    scale = -1.0f;
    ONNXQ_EXPECT(onnxq_conv_pack(&p.w, w, sizeof w, NULL, 0, &scale, 1, packed, size) == ONNXQ_E_ARG,
                 "pack with negative scale");
    scale = NAN;
    ONNXQ_EXPECT(onnxq_conv_pack(&p.w, w, sizeof w, NULL, 0, &scale, 1, packed, size) == ONNXQ_E_ARG,
                 "pack with NaN scale");
    free(packed);
}

/* Every 8-byte word of the header (shape, section offsets and lengths at bytes 64-127, total
 * size), and the per-group GEMM headers, corrupted: onnxq_conv_run refuses without touching the
 * output, for the GEMM and the depthwise layouts. */
static void check_corrupt_headers(void) {
    static const size_t groups_of[2] = {1, 8};
    for (int d = 0; d < 2; ++d) {
        conv_case k = base_case(5, 5, 8, 8, 3, groups_of[d]);
        onnxq_conv_params p = params_of(&k);
        size_t size = 0;
        const size_t wn = 8 * (8 / groups_of[d]) * 9;
        int8_t w[8 * 8 * 9];
        float scale = 0.01f;
        memset(w, 1, sizeof w);
        onnxq_conv_packed_size(&p.w, &size);
        uint8_t* packed = aligned_alloc(64, (size + 63) / 64 * 64);
        ONNXQ_EXPECT(onnxq_conv_pack(&p.w, w, wn, NULL, 0, &scale, 1, packed, size) == ONNXQ_OK,
                     "pack: %s", onnxq_last_error());
        onnxq_conv_weights_params got;
        ONNXQ_EXPECT(onnxq_conv_packed_shape(packed, size, &got) == ONNXQ_OK && got.out_c == 8 &&
                         got.groups == groups_of[d],
                     "packed shape: %s", onnxq_last_error());
        static const uint64_t evil[] = {0, 1, 63, 64, 4096, (uint64_t)1 << 40, ~(uint64_t)0};
        for (size_t word = 0; word < 16; ++word) {
            uint64_t* h = (uint64_t*)(void*)packed;
            const uint64_t saved = h[word];
            for (size_t e = 0; e < sizeof evil / sizeof evil[0]; ++e) {
                if (evil[e] == saved) continue;
                h[word] = evil[e];
                /* word 1 holds kind and the reserved field: any change is refused too */
                expect_error(&p, packed, size, 200, 200, word >= 2 && word <= 6 ? -1 : ONNXQ_E_ARG,
                             "corrupt header word");
                onnxq_conv_weights_params wp;
                ONNXQ_EXPECT(onnxq_conv_packed_shape(packed, size, &wp) != ONNXQ_OK,
                             "depthwise %d: header word %zu = %llu accepted", d, word,
                             (unsigned long long)evil[e]);
            }
            h[word] = saved;
        }
        if (d == 0) { /* the group's GEMM header inside the buffer */
            onnxq_conv_packed hdr;
            memcpy(&hdr, packed, sizeof hdr);
            uint64_t* g = (uint64_t*)(void*)(packed + hdr.weights_off);
            for (size_t word = 0; word < 8; ++word) {
                const uint64_t saved = g[word];
                g[word] = saved ^ 0x10u;
                expect_error(&p, packed, size, 200, 200, ONNXQ_E_ARG, "corrupt group GEMM header");
                g[word] = saved;
            }
        }
        expect_error(&p, packed, size, 200, 200, ONNXQ_OK, "restored header");
        free(packed);
    }
}

/* The pool never holds more workers than the CPUs allow (ONNXQ_CONV_MAX_THREADS requested), is
 * reused across calls, and onnxq_conv_threads_release joins every worker. */
static void check_thread_pool(void) {
    conv_case k = base_case(40, 39, 64, 64, 3, 1); /* ~130M MACs: enough work for every thread */
    k.threads = ONNXQ_CONV_MAX_THREADS;
    for (int round = 0; round < 3; ++round) check_case(&k);
    const size_t alive = onnxq_conv_threads_alive();
    ONNXQ_EXPECT(alive < ONNXQ_CONV_MAX_THREADS, "%zu workers alive", alive);
    ONNXQ_EXPECT(onnxq_conv_threads_release() == alive, "release stopped another count");
    ONNXQ_EXPECT(onnxq_conv_threads_alive() == 0, "workers alive after release");
    k.threads = 2;
    check_case(&k); /* the pool starts again */
    ONNXQ_EXPECT(onnxq_conv_threads_alive() <= 1, "%zu workers for 2 threads",
                 onnxq_conv_threads_alive());
    onnxq_conv_threads_release();
}

void onnxq_test_conv(void);
void onnxq_test_conv(void) {
    check_edge_cases();
    check_random_cases(60);
    check_bad_input();
    check_corrupt_headers();
    check_thread_pool();
}
