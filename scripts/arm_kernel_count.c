/* Executed instructions of one onnxq conv or GEMM call on aarch64, counted under qemu by
 * scripts/qemu_insn_count.c: the quick loop for tuning the NEON kernels on one layer shape
 * (scripts/arm_kernel_count.sh builds and runs it; see docs/arm.md).
 *
 *   arm_kernel_count conv IN_HW IN_C OUT_C KERNEL STRIDE PAD [BATCH]
 *   arm_kernel_count gemm M K N
 *
 * ONNXQ_ISA=neon|neondot|scalar forces an ISA, as everywhere in onnxq.
 * Weights and inputs are pseudo-random (fixed seed), weights in [-127, 127] like onnxq's
 * symmetric int8 weights. Prints "<what> <kernel> <instructions> <MACs> <MACs per instruction>";
 * the count covers the run only (not the packing), one thread. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "onnxq/conv.h"
#include "onnxq/gemm.h"
#include "onnxq/status.h"
#include "onnxq/types.h"

static uint32_t seed = 12345u;
static uint32_t next(void) { return seed = seed * 1664525u + 1013904223u; }

static void mark(long code) { (void)lseek(-7301, code, 0); }

static void fail(const char* what) {
    fprintf(stderr, "arm_kernel_count: %s: %s\n", what, onnxq_last_error());
    exit(2);
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s conv IN_HW IN_C OUT_C KERNEL STRIDE PAD [BATCH] | gemm M K N\n",
                argv[0]);
        return 2;
    }
    const int conv = strcmp(argv[1], "conv") == 0;
    const int nargs = conv ? 8 : 5;
    if (argc < nargs || argc > nargs + conv) {
        fprintf(stderr, "arm_kernel_count: wrong number of arguments\n");
        return 2;
    }
    size_t a[7] = {0, 0, 0, 0, 0, 0, 1};
    for (int i = 0; i < argc - 2; i++) a[i] = (size_t)strtoul(argv[2 + i], NULL, 10);
    if (conv) {
        const size_t hw = a[0], c = a[1], o = a[2], kk = a[3], s = a[4], pad = a[5], nb = a[6];
        onnxq_conv_params p = {
            .w = {o, c, 1, kk, kk}, .batch = nb, .in_h = hw, .in_w = hw, .stride_h = s,
            .stride_w = s, .dilation_h = 1, .dilation_w = 1, .pad_top = pad, .pad_left = pad,
            .pad_bottom = pad, .pad_right = pad, .x_zp = 3, .y_zp = 0, .qmin = 0, .qmax = 255,
            .threads = 1,
        };
        size_t oh, ow, psize;
        if (onnxq_conv_output_size(&p, &oh, &ow) != ONNXQ_OK) fail("shape");
        if (onnxq_conv_packed_size(&p.w, &psize) != ONNXQ_OK) fail("packed size");
        const size_t wn = o * c * kk * kk, xn = nb * hw * hw * c, yn = nb * oh * ow * o;
        int8_t* w = malloc(wn);
        int32_t* bias = malloc(o * sizeof *bias);
        float* scale = malloc(o * sizeof *scale);
        uint8_t* x = malloc(xn);
        uint8_t* y = malloc(yn);
        void* packed = aligned_alloc(64, (psize + 63) / 64 * 64);
        for (size_t i = 0; i < wn; i++) w[i] = (int8_t)((int)(next() >> 8) % 255 - 127);
        for (size_t i = 0; i < o; i++) bias[i] = (int32_t)(next() >> 20) - 2048, scale[i] = 1e-4f;
        for (size_t i = 0; i < xn; i++) x[i] = (uint8_t)(next() >> 24);
        if (onnxq_conv_pack(&p.w, w, wn, bias, o, scale, o, packed, psize) != ONNXQ_OK) fail("pack");
        mark(1);
        if (onnxq_conv_run(&p, packed, psize, x, xn, y, yn) != ONNXQ_OK) fail("run");
        mark(2);
        uint32_t h = 0;
        for (size_t i = 0; i < yn; i++) h = h * 31u + y[i];
        printf("conv %zux%zux%zux%zu->%zu k%zu s%zu p%zu %s macs=%zu hash=%08x\n", nb, hw, hw, c, o,
               kk, s, pad, onnxq_conv_kernel_name(&p), yn * c * kk * kk, h);
    } else {
        const size_t m = a[0], k = a[1], n = a[2];
        const size_t psize = onnxq_gemm_u8s8_packed_size(k, n);
        int8_t* b = malloc(k * n);
        int32_t* bias = malloc(n * sizeof *bias);
        float* scale = malloc(n * sizeof *scale);
        uint8_t* am = malloc(m * k);
        uint8_t* c = malloc(m * n);
        void* packed = aligned_alloc(64, (psize + 63) / 64 * 64);
        for (size_t i = 0; i < k * n; i++) b[i] = (int8_t)((int)(next() >> 8) % 255 - 127);
        for (size_t i = 0; i < n; i++) bias[i] = (int32_t)(next() >> 20) - 2048, scale[i] = 1e-4f;
        for (size_t i = 0; i < m * k; i++) am[i] = (uint8_t)(next() >> 24);
        if (onnxq_gemm_u8s8_pack(b, k * n, k, n, (ptrdiff_t)n, 1, 0, packed, psize) != ONNXQ_OK)
            fail("pack");
        onnxq_gemm_u8s8_params p = {
            .k = k, .n = n, .m = m, .a = am, .a_len = m * k, .lda = k, .a_zp = 3, .bias = bias,
            .bias_len = n, .out_type = ONNXQ_U8, .scale = scale, .scale_len = n, .out_zp = 0,
            .qmin = 0, .qmax = 255, .c = c, .c_len = m * n, .ldc = n,
        };
        mark(1);
        if (onnxq_gemm_u8s8_run(packed, psize, &p) != ONNXQ_OK) fail("run");
        mark(2);
        uint32_t h = 0;
        for (size_t i = 0; i < m * n; i++) h = h * 31u + c[i];
        printf("gemm %zux%zux%zu %s macs=%zu hash=%08x\n", m, k, n, onnxq_gemm_u8s8_kernel_name(k),
               m * k * n, h);
    }
    return 0;
}
