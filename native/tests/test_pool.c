/* C tests of max / average / global-average pooling: every ISA present agrees with the scalar
 * kernels (bit-exact) over geometries with odd sizes, 1x1 and 7x7 kernels, both signednesses and
 * edge zero points; hand-checked values; bad arguments fail cleanly. */
#include <stdlib.h>
#include <string.h>

#include "onnxq/pool.h"
#include "test_util.h"

typedef int pool_fn(const onnxq_pool_params*, const void*, size_t, void*, size_t);

static void compare_isas(const char* what, pool_fn* fn, const onnxq_pool_params* p,
                         const uint8_t* x, size_t x_len, size_t y_len) {
    uint8_t* want = malloc(y_len + 1);
    uint8_t* got = malloc(y_len + 1);
    onnxq_isa_set("scalar");
    ONNXQ_EXPECT(fn(p, x, x_len, want, y_len) == ONNXQ_OK, "%s scalar: %s", what,
                 onnxq_last_error());
    ONNXQ_TEST_FOREACH_ISA(isa) {
        memset(got, 0xAA, y_len + 1);
        ONNXQ_EXPECT(fn(p, x, x_len, got, y_len) == ONNXQ_OK, "%s %s: %s", what,
                     onnxq_isa_name(isa), onnxq_last_error());
        ONNXQ_EXPECT(memcmp(got, want, y_len) == 0,
                     "%s: isa %s differs from scalar (c=%zu k=%zux%zu)", what, onnxq_isa_name(isa),
                     p->channels, p->kernel_h, p->kernel_w);
        ONNXQ_EXPECT(got[y_len] == 0xAA, "%s: isa %s wrote past the end", what,
                     onnxq_isa_name(isa));
    }
    onnxq_isa_set(NULL);
    free(want);
    free(got);
}

static void test_isas_agree(void) {
    static const size_t geo[][8] = {
        /* kh kw sh sw dh dw pad(all) c */
        {1, 1, 1, 1, 1, 1, 0, 1}, {3, 3, 2, 2, 1, 1, 1, 17}, {7, 7, 1, 1, 1, 1, 3, 33},
        {2, 3, 1, 2, 2, 1, 1, 64}, {3, 2, 3, 1, 1, 3, 2, 65}, {9, 7, 1, 1, 1, 1, 0, 8},
    };
    static const int32_t zps[2][3] = {{0, 128, 255}, {-128, 0, 127}};
    for (int qtype = ONNXQ_U8; qtype <= ONNXQ_S8; ++qtype)
        for (size_t g = 0; g < sizeof geo / sizeof geo[0]; ++g)
            for (int z = 0; z < 3; ++z) {
                onnxq_pool_params p;
                memset(&p, 0, sizeof p);
                p.batch = 2, p.in_h = 9, p.in_w = 7, p.channels = geo[g][7];
                p.kernel_h = geo[g][0], p.kernel_w = geo[g][1];
                p.stride_h = geo[g][2], p.stride_w = geo[g][3];
                p.dilation_h = geo[g][4], p.dilation_w = geo[g][5];
                p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = geo[g][6];
                p.qtype = qtype;
                p.count_include_pad = z == 1;
                p.x_scale = 0.037f, p.y_scale = 0.021f;
                p.x_zp = zps[qtype][z], p.y_zp = zps[qtype][2 - z];
                const size_t x_len = 2 * 9 * 7 * p.channels;
                uint8_t* x = malloc(x_len);
                onnxq_test_fill_u8(x, x_len, 0, 255);
                size_t oh = 0, ow = 0;
                ONNXQ_EXPECT(onnxq_pool_output_size(&p, &oh, &ow) == ONNXQ_OK, "%s",
                             onnxq_last_error());
                const size_t y_len = 2 * oh * ow * p.channels;
                compare_isas("maxpool", onnxq_maxpool, &p, x, x_len, y_len);
                compare_isas("avgpool", onnxq_avgpool, &p, x, x_len, y_len);
                compare_isas("global_avgpool", onnxq_global_avgpool, &p, x, x_len, 2 * p.channels);
                free(x);
            }
}

static void test_values(void) {
    /* 1x2x2x1 image {1, 2, 3, 10}: max 10, average (scales 1) 16 / 4 = 4, half to even */
    const uint8_t x[4] = {1, 2, 3, 10};
    uint8_t y[4] = {0};
    onnxq_pool_params p;
    memset(&p, 0, sizeof p);
    p.batch = 1, p.in_h = 2, p.in_w = 2, p.channels = 1, p.kernel_h = 2, p.kernel_w = 2;
    p.stride_h = p.stride_w = p.dilation_h = p.dilation_w = 1;
    p.qtype = ONNXQ_U8, p.x_scale = 1.0f, p.y_scale = 1.0f;
    ONNXQ_EXPECT(onnxq_maxpool(&p, x, 4, y, 1) == ONNXQ_OK && y[0] == 10, "max got %d", y[0]);
    ONNXQ_EXPECT(onnxq_avgpool(&p, x, 4, y, 1) == ONNXQ_OK && y[0] == 4, "avg got %d", y[0]);
    p.y_scale = 8.0f; /* 4 / 8 = 0.5 -> 0 (even) */
    ONNXQ_EXPECT(onnxq_global_avgpool(&p, x, 4, y, 1) == ONNXQ_OK && y[0] == 0, "gavg got %d",
                 y[0]);
    p.y_scale = 1.0f;
    p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = 1; /* 3x3 outputs */
    ONNXQ_EXPECT(onnxq_avgpool(&p, x, 4, y, 4) == ONNXQ_E_SHAPE, "y_len checked");
    uint8_t y9[9];
    ONNXQ_EXPECT(onnxq_avgpool(&p, x, 4, y9, 9) == ONNXQ_OK, "%s", onnxq_last_error());
    ONNXQ_EXPECT(y9[0] == 1 && y9[4] == 4 && y9[8] == 10, "corners %d %d %d", y9[0], y9[4], y9[8]);
    p.count_include_pad = 1; /* corner: 1 / 4 = 0.25 -> 0; centre 16 / 4 = 4; 10 / 4 = 2.5 -> 2 */
    ONNXQ_EXPECT(onnxq_avgpool(&p, x, 4, y9, 9) == ONNXQ_OK, "%s", onnxq_last_error());
    ONNXQ_EXPECT(y9[0] == 0 && y9[4] == 4 && y9[8] == 2, "include pad %d %d %d", y9[0], y9[4],
                 y9[8]);
}

static void test_ceil_mode(void) {
    /* width 5, kernel 2, stride 2: floor gives 2 windows, ceil 3 (the last one holds x[4] only) */
    const uint8_t x[5] = {1, 9, 3, 4, 7};
    uint8_t y[3] = {0, 0, 0};
    onnxq_pool_params p;
    memset(&p, 0, sizeof p);
    p.batch = 1, p.in_h = 1, p.in_w = 5, p.channels = 1, p.kernel_h = 1, p.kernel_w = 2;
    p.stride_h = 1, p.stride_w = 2, p.dilation_h = p.dilation_w = 1;
    p.qtype = ONNXQ_U8, p.x_scale = 1.0f, p.y_scale = 1.0f, p.ceil_mode = 1;
    size_t oh = 0, ow = 0;
    ONNXQ_EXPECT(onnxq_pool_output_size(&p, &oh, &ow) == ONNXQ_OK && oh == 1 && ow == 3, "ow %zu",
                 ow);
    ONNXQ_EXPECT(onnxq_maxpool(&p, x, 5, y, 3) == ONNXQ_OK, "%s", onnxq_last_error());
    ONNXQ_EXPECT(y[0] == 9 && y[1] == 4 && y[2] == 7, "max %d %d %d", y[0], y[1], y[2]);
    p.count_include_pad = 1; /* the kernel size divides: 7 / 2 = 3.5 -> 4 */
    ONNXQ_EXPECT(onnxq_avgpool(&p, x, 5, y, 3) == ONNXQ_OK, "%s", onnxq_last_error());
    ONNXQ_EXPECT(y[0] == 5 && y[1] == 4 && y[2] == 4, "avg %d %d %d", y[0], y[1], y[2]);
    p.in_w = 4; /* a window starting past the image is dropped: 2 windows, not 3 */
    p.pad_right = 1;
    ONNXQ_EXPECT(onnxq_pool_output_size(&p, &oh, &ow) == ONNXQ_OK && ow == 2, "ow %zu", ow);
}

static void test_bad_arguments(void) {
    uint8_t x[18] = {0}, y[18];
    memset(y, 7, sizeof y);
    onnxq_pool_params p;
    memset(&p, 0, sizeof p);
    p.batch = 1, p.in_h = 3, p.in_w = 3, p.channels = 2, p.kernel_h = 4, p.kernel_w = 1;
    p.stride_h = p.stride_w = p.dilation_h = p.dilation_w = 1;
    p.qtype = ONNXQ_U8, p.x_scale = 1.0f, p.y_scale = 1.0f;
    ONNXQ_EXPECT(onnxq_maxpool(&p, x, 18, y, 18) == ONNXQ_E_SHAPE, "kernel larger than input");
    ONNXQ_EXPECT(strstr(onnxq_last_error(), "larger than the padded input") != NULL, "msg %s",
                 onnxq_last_error());
    p.kernel_h = 2, p.dilation_h = 3;
    ONNXQ_EXPECT(onnxq_avgpool(&p, x, 18, y, 18) == ONNXQ_E_SHAPE,
                 "dilated kernel larger than input");
    p.dilation_h = 1, p.pad_top = (size_t)-1;
    ONNXQ_EXPECT(onnxq_maxpool(&p, x, 18, y, 18) == ONNXQ_E_SHAPE, "pad overflow");
    p.pad_top = 0, p.stride_w = 0;
    ONNXQ_EXPECT(onnxq_maxpool(&p, x, 18, y, 18) == ONNXQ_E_ARG, "zero stride");
    p.stride_w = 1, p.channels = 0;
    ONNXQ_EXPECT(onnxq_maxpool(&p, x, 0, y, 0) == ONNXQ_E_SHAPE, "zero channels");
    p.channels = 2;
    ONNXQ_EXPECT(onnxq_maxpool(&p, x, 17, y, 12) == ONNXQ_E_SHAPE, "x_len");
    ONNXQ_EXPECT(onnxq_global_avgpool(&p, x, 18, y, 3) == ONNXQ_E_SHAPE, "y_len");
    p.x_zp = -1;
    ONNXQ_EXPECT(onnxq_avgpool(&p, x, 18, y, 12) == ONNXQ_E_ARG, "zp out of range");
    p.x_zp = 0, p.y_scale = -1.0f;
    ONNXQ_EXPECT(onnxq_global_avgpool(&p, x, 18, y, 2) == ONNXQ_E_ARG, "negative scale");
    ONNXQ_EXPECT(onnxq_maxpool(&p, NULL, 18, y, 12) == ONNXQ_E_ARG, "NULL x");
    for (int i = 0; i < 18; ++i) ONNXQ_EXPECT(y[i] == 7, "output touched on error");
}

void onnxq_test_pool(void) {
    test_isas_agree();
    test_values();
    test_ceil_mode();
    test_bad_arguments();
}
