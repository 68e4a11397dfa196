/* gemm family: every ISA bit-exact with scalar (all output types) on edge and random shapes, and
 * bad input rejected without touching the output. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "test_util.h"

typedef struct gemm_case {
    size_t m, k, n;
    int32_t a_zp;
    int a_max;  /* A's bytes in [0, a_max]; 0 means 255. 127: AVX2's vpmaddubsw path */
    int poison; /* 1: then one byte 128, last in A; 2: then `high` random bytes of 128..255 at
                 * random places (AVX2: few per 6-row step are fixed up on the vpmaddubsw path,
                 * more send the step to the int16 path) */
    size_t high;
    int b_narrow; /* B in [-127, 127] (symmetric weights): NEON's int16 pair sums; else [-128, 127] */
    int extremes; /* A only 0 / 255, B only its two ends: the largest int16 partial sums */
    int b_small;  /* 1: B in [-64, 64] (7-bit weights: AVX2 runs every row on vpmaddubsw, with A at
                   * 255 its pair sums reach -32640 / 32640); 2: the same but one weight of -65
                   * (or 65), which must send the call to the other paths */
} gemm_case;

static void* packed_weights(const int8_t* b, size_t k, size_t n, size_t* size) {
    *size = onnxq_gemm_u8s8_packed_size(k, n);
    void* packed = aligned_alloc(64, (*size + 63) / 64 * 64);
    ONNXQ_EXPECT(onnxq_gemm_u8s8_pack(b, k * n, k, n, (ptrdiff_t)n, 1, 0, packed, *size) == ONNXQ_OK,
                 "pack %zux%zu: %s", k, n, onnxq_last_error());
    return packed;
}

static void check_case(gemm_case gc) {
    /* lda past K, sometimes past K rounded up to 64 (AMX then reads A in place, over garbage) */
    const size_t m = gc.m, k = gc.k, n = gc.n;
    const size_t lda = (onnxq_test_next() & 1) ? k + (size_t)onnxq_test_rand_int(0, 5)
                                               : (k + 63) / 64 * 64 + (size_t)onnxq_test_rand_int(0, 3);
    uint8_t* a = malloc(m * lda);
    int8_t* b = malloc(k * n);
    int32_t* bias = malloc(n * sizeof *bias);
    float* scale = malloc(n * sizeof *scale);
    float* bias_f = malloc(n * sizeof *bias_f);
    onnxq_test_fill_u8(a, m * lda, 0, gc.a_max ? gc.a_max : 255);
    if (gc.poison == 1) a[(m - 1) * lda + k - 1] = 128;
    for (size_t e = 0; gc.poison == 2 && e < gc.high; ++e)
        a[(size_t)onnxq_test_rand_int(0, (int32_t)m - 1) * lda +
          (size_t)onnxq_test_rand_int(0, (int32_t)k - 1)] = (uint8_t)onnxq_test_rand_int(128, 255);
    const int b_lo = gc.b_small ? -64 : gc.b_narrow ? -127 : -128, b_hi = gc.b_small ? 64 : 127;
    onnxq_test_fill_s8(b, k * n, b_lo, b_hi);
    if (gc.extremes) {
        for (size_t i = 0; i < m * lda; ++i) a[i] = (onnxq_test_next() & 3) ? 0 : 255;
        for (size_t i = 0; i < k * n; ++i) {
            const uint32_t r = onnxq_test_next();
            b[i] = (int8_t)((r & 3) ? b_lo : (gc.b_small && (r & 4)) ? 63 : b_hi);
        }
    }
    if (gc.b_small == 2) b[(size_t)onnxq_test_rand_int(0, (int32_t)(k * n) - 1)] =
        (onnxq_test_next() & 1) ? -65 : 65;
    for (size_t j = 0; j < n; ++j) {
        bias[j] = onnxq_test_rand_int(-30000, 30000);
        scale[j] = onnxq_test_rand_float(0.2f, 3.0f) / (float)(k * 40);
        bias_f[j] = onnxq_test_rand_float(-1.0f, 1.0f);
    }
    size_t packed_size;
    void* packed = packed_weights(b, k, n, &packed_size);
    int small = -1, want_small = 1;
    for (size_t i = 0; i < k * n; ++i) want_small &= b[i] >= -64 && b[i] <= 64;
    ONNXQ_EXPECT(gc.b_small == 0 || want_small == (gc.b_small == 1), "b_small=%d: B is not so",
                 gc.b_small);
    ONNXQ_EXPECT(onnxq_gemm_u8s8_packed_small_weights(packed, packed_size, &small) == ONNXQ_OK &&
                     small == want_small,
                 "k=%zu n=%zu b_small=%d: packing says small weights = %d", k, n, gc.b_small, small);
    static const int out_types[4] = {ONNXQ_U8, ONNXQ_S8, ONNXQ_F32, ONNXQ_I32};
    const size_t c_bytes = m * n * 4;
    uint8_t* want = malloc(c_bytes);
    uint8_t* got = malloc(c_bytes);
    for (int t = 0; t < 4; ++t) {
        const int ot = out_types[t];
        onnxq_gemm_u8s8_params p = {
            .k = k, .n = n, .m = m, .a = a, .a_len = m * lda, .lda = lda, .a_zp = gc.a_zp,
            .bias = bias, .bias_len = n, .out_type = ot, .scale = scale,
            .scale_len = (t == 1) ? 1 : n, .out_zp = ot == ONNXQ_S8 ? -3 : 100,
            .qmin = ot == ONNXQ_S8 ? -128 : 0, .qmax = ot == ONNXQ_S8 ? 100 : 255,
            .bias_f = ot == ONNXQ_F32 ? bias_f : NULL, .bias_f_len = n, .c = want, .c_len = m * n,
            .ldc = n,
        };
        const size_t bytes = m * n * (ot == ONNXQ_U8 || ot == ONNXQ_S8 ? 1 : 4);
        onnxq_isa_set("scalar");
        ONNXQ_EXPECT(onnxq_gemm_u8s8_run(packed, packed_size, &p) == ONNXQ_OK, "scalar gemm: %s",
                     onnxq_last_error());
        p.c = got;
        ONNXQ_TEST_FOREACH_ISA(isa) {
            memset(got, 0x5a, c_bytes);
            ONNXQ_EXPECT(onnxq_gemm_u8s8_run(packed, packed_size, &p) == ONNXQ_OK, "gemm: %s",
                         onnxq_last_error());
            ONNXQ_EXPECT(memcmp(got, want, bytes) == 0,
                         "gemm m=%zu k=%zu n=%zu a_zp=%d a_max=%d poison=%d b_narrow=%d b_small=%d out_type=%d "
                         "differs from scalar", m, k, n, (int)gc.a_zp, gc.a_max, gc.poison,
                         gc.b_narrow, gc.b_small, ot);
            ONNXQ_EXPECT(bytes == c_bytes || got[bytes] == 0x5a, "gemm wrote past C");
            /* The same C from ranges of columns (run_cols), cut at a random multiple of 16. */
            memset(got, 0x5a, c_bytes);
            const size_t cut = (size_t)onnxq_test_rand_int(0, (int)((n - 1) / 16)) * 16;
            if (cut > 0)
                ONNXQ_EXPECT(onnxq_gemm_u8s8_run_cols(packed, packed_size, &p, 0, cut) == ONNXQ_OK,
                             "gemm cols [0, %zu): %s", cut, onnxq_last_error());
            ONNXQ_EXPECT(onnxq_gemm_u8s8_run_cols(packed, packed_size, &p, cut, n - cut) == ONNXQ_OK,
                         "gemm cols [%zu, %zu): %s", cut, n, onnxq_last_error());
            ONNXQ_EXPECT(memcmp(got, want, bytes) == 0,
                         "gemm m=%zu k=%zu n=%zu out_type=%d cut at column %zu differs from scalar",
                         m, k, n, ot, cut);
            ONNXQ_EXPECT(bytes == c_bytes || got[bytes] == 0x5a, "gemm (cols) wrote past C");
        }
    }
    free(a), free(b), free(bias), free(scale), free(bias_f), free(packed), free(want), free(got);
}

static void check_bad_input(void) {
    int8_t b[12] = {0};
    uint8_t a[12] = {0}, c[12];
    const float scale = 1.0f;
    const int32_t bias[3] = {0};
    size_t size;
    void* packed = packed_weights(b, 4, 3, &size);
    onnxq_gemm_u8s8_params ok = {.k = 4, .n = 3, .m = 3, .a = a, .a_len = 12, .lda = 4, .a_zp = 0,
                                 .out_type = ONNXQ_U8, .scale = &scale, .scale_len = 1, .out_zp = 0,
                                 .qmin = 0, .qmax = 255, .c = c, .c_len = 9, .ldc = 3};
    onnxq_gemm_u8s8_params p = ok;
    memset(c, 7, sizeof c);
    p.m = 0;
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run(packed, size, &p) == ONNXQ_E_SHAPE, "m=0 accepted");
    p = ok, p.lda = 3;
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run(packed, size, &p) == ONNXQ_E_SHAPE, "lda<k accepted");
    p = ok, p.ldc = 2;
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run(packed, size, &p) == ONNXQ_E_SHAPE, "ldc<n accepted");
    p = ok, p.a_zp = 300;
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run(packed, size, &p) == ONNXQ_E_ARG, "a_zp=300 accepted");
    p = ok, p.qmin = 9, p.qmax = 3;
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run(packed, size, &p) == ONNXQ_E_ARG, "empty clamp accepted");
    p = ok, p.out_type = 42;
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run(packed, size, &p) == ONNXQ_E_ARG, "out_type 42 accepted");
    p = ok, p.scale_len = 2;
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run(packed, size, &p) == ONNXQ_E_SHAPE, "scale_len 2 accepted");
    p = ok, p.a_len = 11;
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run(packed, size, &p) == ONNXQ_E_SHAPE, "short a accepted");
    p = ok, p.lda = 5, p.a_len = 13;
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run(packed, size, &p) == ONNXQ_E_SHAPE, "a too short for lda");
    p = ok, p.c_len = 8;
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run(packed, size, &p) == ONNXQ_E_SHAPE, "short c accepted");
    p = ok, p.bias = bias, p.bias_len = 2;
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run(packed, size, &p) == ONNXQ_E_SHAPE, "bias_len 2 accepted");
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run_cols(packed, size, &ok, 0, 0) == ONNXQ_E_SHAPE, "0 columns accepted");
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run_cols(packed, size, &ok, 0, 4) == ONNXQ_E_SHAPE, "cols past n accepted");
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run_cols(packed, size, &ok, 1, 2) == ONNXQ_E_SHAPE, "col0=1 accepted");
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run_cols(packed, size, &ok, 16, 1) == ONNXQ_E_SHAPE, "col0 past n accepted");
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run_cols(packed, size, NULL, 0, 1) == ONNXQ_E_ARG, "NULL params accepted");
    p = ok, p.n = 1u << 24;
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run(packed, size, &p) == ONNXQ_E_SHAPE, "caller n disagrees");
    p = ok, p.k = 5;
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run(packed, size, &p) == ONNXQ_E_SHAPE, "caller k disagrees");
    p = ok, p.a = NULL;
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run(packed, size, &p) == ONNXQ_E_ARG, "NULL a accepted");
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run(packed, size - 1, &ok) == ONNXQ_E_ARG, "short buffer accepted");
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run(packed, 16, &ok) == ONNXQ_E_ARG, "header-only buffer accepted");
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run(a, sizeof a, &ok) == ONNXQ_E_ARG, "garbage buffer accepted");
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run(packed, size, NULL) == ONNXQ_E_ARG, "NULL params accepted");
    /* every 8-byte word of the header corrupted (sizes, offsets, total): refused, nothing read */
    for (size_t word = 0; word < 8; ++word) {
        uint64_t* h = (uint64_t*)packed;
        const uint64_t saved = h[word];
        static const uint64_t evil[] = {1u << 24, 0, 1, (uint64_t)1 << 40, ~(uint64_t)0};
        for (size_t e = 0; e < sizeof evil / sizeof evil[0]; ++e) {
            if (evil[e] == saved) continue;
            h[word] = evil[e];
            /* a k or n with the same padded layout (k = 1: still one 64-deep group) is a valid
             * header of other sizes: refused as disagreeing with the caller's k x n */
            ONNXQ_EXPECT(onnxq_gemm_u8s8_run(packed, size, &ok) != ONNXQ_OK,
                         "header word %zu = %llu accepted", word, (unsigned long long)evil[e]);
            size_t k = 0, n = 0;
            const int st = onnxq_gemm_u8s8_packed_shape(packed, size, &k, &n);
            ONNXQ_EXPECT(st == ONNXQ_E_ARG || (st == ONNXQ_OK && (k != 4 || n != 3)),
                         "packed_shape: header word %zu corrupt accepted", word);
        }
        h[word] = saved;
    }
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run(packed, size, &ok) == ONNXQ_OK, "restored header: %s",
                 onnxq_last_error());
    memset(c, 7, sizeof c);
    p = ok, p.c_len = 8;
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run(packed, size, &p) == ONNXQ_E_SHAPE, "short c accepted");
    for (size_t i = 0; i < sizeof c; ++i) ONNXQ_EXPECT(c[i] == 7, "output touched on error");
    ONNXQ_EXPECT(onnxq_gemm_u8s8_pack(b, 12, 4, 3, 3, 1, 1, packed, size) == ONNXQ_E_ARG,
                 "weight zero point 1 accepted");
    ONNXQ_EXPECT(onnxq_gemm_u8s8_pack(b, 12, 4, 3, 3, 1, 0, packed, size - 1) == ONNXQ_E_SHAPE,
                 "short pack buffer accepted");
    ONNXQ_EXPECT(onnxq_gemm_u8s8_pack(b, 11, 4, 3, 3, 1, 0, packed, size) == ONNXQ_E_SHAPE,
                 "short b accepted");
    ONNXQ_EXPECT(onnxq_gemm_u8s8_pack(b, 12, 4, 3, 4, 1, 0, packed, size) == ONNXQ_E_SHAPE,
                 "b too short for its strides accepted");
    ONNXQ_EXPECT(onnxq_gemm_u8s8_pack(b + 11, 12, 4, 3, -3, -1, 0, packed, size) == ONNXQ_E_ARG,
                 "negative strides accepted");
    ONNXQ_EXPECT(onnxq_gemm_u8s8_packed_size(0, 3) == 0, "k=0 has a packed size");
    size_t k = 0, n = 0;
    ONNXQ_EXPECT(onnxq_gemm_u8s8_packed_shape(packed, size, &k, &n) == ONNXQ_OK && k == 4 && n == 3,
                 "packed shape %zux%zu", k, n);
    int32_t colsum[3] = {0, 0, 0};
    int8_t w[6] = {1, -2, 3, 4, -128, 127}; /* [k=2, n=3] */
    void* small = packed_weights(w, 2, 3, &size);
    ONNXQ_EXPECT(onnxq_gemm_u8s8_packed_colsum(small, size, 2, 3, colsum, 3) == ONNXQ_OK &&
                     colsum[0] == 5 && colsum[1] == -130 && colsum[2] == 130,
                 "column sums");
    ONNXQ_EXPECT(onnxq_gemm_u8s8_packed_colsum(small, size, 2, 1u << 24, colsum, 3) == ONNXQ_E_SHAPE,
                 "colsum with a disagreeing n");
    ONNXQ_EXPECT(onnxq_gemm_u8s8_packed_colsum(small, size, 2, 3, colsum, 2) == ONNXQ_E_SHAPE,
                 "colsum into a short array");
    ONNXQ_EXPECT(onnxq_gemm_u8s8_packed_colsum(a, sizeof a, 2, 3, colsum, 3) == ONNXQ_E_ARG,
                 "colsum of a garbage buffer");
    free(small);
    free(packed);
}

/* A placed so that its last byte is the last byte before a PROT_NONE page: any kernel reading
 * past A faults (AMX tile loads are not seen by ASan, the guard page catches them). */
static void check_no_read_past_a(size_t m, size_t k, size_t n, int a_max) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t bytes = m * k, span = (bytes + page - 1) / page * page;
    uint8_t* region = mmap(NULL, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                           -1, 0);
    if (region == MAP_FAILED) return;
    mprotect(region + span, page, PROT_NONE);
    uint8_t* a = region + span - bytes;
    onnxq_test_fill_u8(a, bytes, 0, a_max);
    int8_t* b = malloc(k * n);
    onnxq_test_fill_s8(b, k * n, a_max == 127 ? -127 : -128, 127); /* both NEON paths */
    size_t size;
    void* packed = packed_weights(b, k, n, &size);
    int32_t* want = malloc(m * n * sizeof *want);
    int32_t* got = malloc(m * n * sizeof *got);
    onnxq_gemm_u8s8_params p = {.k = k, .n = n, .m = m, .a = a, .a_len = bytes, .lda = k,
                                .a_zp = 3, .out_type = ONNXQ_I32, .c = want, .c_len = m * n,
                                .ldc = n};
    onnxq_isa_set("scalar");
    ONNXQ_EXPECT(onnxq_gemm_u8s8_run(packed, size, &p) == ONNXQ_OK, "%s", onnxq_last_error());
    p.c = got;
    ONNXQ_TEST_FOREACH_ISA(isa) {
        ONNXQ_EXPECT(onnxq_gemm_u8s8_run(packed, size, &p) == ONNXQ_OK, "%s", onnxq_last_error());
        ONNXQ_EXPECT(memcmp(got, want, m * n * sizeof *got) == 0,
                     "guard-page gemm m=%zu k=%zu n=%zu differs", m, k, n);
    }
    free(b), free(packed), free(want), free(got);
    munmap(region, span + page);
}

/* Under amx, K <= 32 runs the avx512vnni kernel (AMX pads K to 64); elsewhere the ISA's best. */
static void check_kernel_choice(void) {
    ONNXQ_TEST_FOREACH_ISA(isa) {
        const char* small = onnxq_gemm_u8s8_kernel_name(32);
        const char* big = onnxq_gemm_u8s8_kernel_name(33);
        const char* want_small = isa == ONNXQ_ISA_AMX ? "__avx512vnni" : NULL;
        ONNXQ_EXPECT(small != NULL && big != NULL, "%s: no gemm kernel name", onnxq_isa_name(isa));
        if (small == NULL || big == NULL) continue;
        const char* best = onnxq_kernel_selected("gemm_u8s8");
        ONNXQ_EXPECT(best != NULL && strcmp(big, best) == 0, "%s: k=33 runs %s, best is %s",
                     onnxq_isa_name(isa), big, best ? best : "(null)");
        if (want_small != NULL) {
            const size_t n = strlen(small), w = strlen(want_small);
            ONNXQ_EXPECT(n > w && strcmp(small + n - w, want_small) == 0, "amx: k=32 runs %s", small);
        } else {
            ONNXQ_EXPECT(strcmp(small, big) == 0, "%s: k=32 runs %s, k=33 %s", onnxq_isa_name(isa),
                         small, big);
        }
    }
    onnxq_isa_set(NULL);
}

void onnxq_test_gemm(void) {
    check_kernel_choice();
    for (int a_max = 127; a_max <= 255; a_max += 128) {
        check_no_read_past_a(1, 1, 5, a_max);
        check_no_read_past_a(3, 7, 17, a_max);
        check_no_read_past_a(33, 100, 20, a_max);
        check_no_read_past_a(64, 64, 16, a_max);
        check_no_read_past_a(70, 129, 40, a_max);
    }
    static const gemm_case edges[] = {
        {1, 1, 1, 0},     {1, 3, 17, 255},  {2, 4, 16, 128},  {5, 63, 31, 7},   {7, 64, 32, 0},
        {8, 65, 33, 255}, {9, 127, 48, 1},  {31, 128, 15, 2}, {32, 129, 64, 3}, {33, 255, 65, 128},
        {47, 27, 64, 5},  {64, 576, 64, 9}, {3, 1000, 7, 4},  {49, 300, 100, 77},
        {17, 16, 96, 3},  {9, 24, 144, 250}, {25, 32, 49, 0}, {11, 8, 33, 128},
        /* K across the AVX2 kernel's 512-deep K chunks; M over several of its row blocks */
        {6, 512, 32, 1},  {7, 513, 48, 255}, {13, 2049, 33, 6}, {250, 1100, 40, 9},
    };
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; ++i) {
        gemm_case gc = edges[i];
        check_case(gc);
        gc.a_max = 127;
        check_case(gc);
        gc.poison = 1;
        check_case(gc);
        gc.poison = 2; /* about 1, then 8 high bytes per 6 rows x 64 of K */
        gc.high = gc.m * gc.k / 384 + 1;
        check_case(gc);
        gc.high *= 8;
        check_case(gc);
        gc = edges[i];
        gc.b_narrow = 1;
        check_case(gc);
        gc.extremes = 1; /* A 0 / 255 (flipped: -128 / 127) times B -127 / 127, and with -128 */
        check_case(gc);
        gc.b_narrow = 0;
        check_case(gc);
        for (int b_small = 1; b_small <= 2; ++b_small) {
            gc = edges[i];
            gc.b_small = b_small;
            check_case(gc);
            gc.extremes = 1;
            check_case(gc);
        }
    }
    for (int r = 0; r < 25; ++r) {
        gemm_case gc = {(size_t)onnxq_test_rand_int(1, 70), (size_t)onnxq_test_rand_int(1, 300),
                        (size_t)onnxq_test_rand_int(1, 90), onnxq_test_rand_int(0, 255),
                        (r & 1) ? 127 : 255, r % 4 == 3, 0, r % 3 == 0, 0, r % 5 == 0};
        if (r % 4 == 1) {
            gc.poison = 2;
            gc.high = (size_t)onnxq_test_rand_int(1, 40);
        }
        check_case(gc);
    }
    check_bad_input();
}
