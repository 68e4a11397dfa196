/* Machine peak of the int8 dot-product units, for scripts/bench_kernels.py (compiled by it).
 *
 * peak_vpmaddwd:   8 independent ymm accumulators, one vpmaddwd (16 int16 MACs, exact) and one
 *                  vpaddd each per step: the exact AVX2 peak (u8 and s8 widened to int16).
 * peak_vpmaddubsw: 8 chains of vpmaddubsw (32 u8 x s8 MACs, pairs summed in int16 with
 *                  saturation), vpmaddwd by ones and vpaddd: onnxruntime's AVX2 U8S8 scheme, exact
 *                  only for u8 values below 128.
 * peak_vpdpbusd: 12 independent zmm accumulators, one vpdpbusd (64 u8 x s8 MACs) each per step.
 * peak_tdpbusd:  4 AMX accumulator tiles fed by 2 A and 2 B tiles, one tdpbusd (16x16x64 MACs)
 *                each per step. Both return the number of MACs done, or 0 when the CPU or the OS
 *                does not allow the instructions (the caller checks the CPU flags first).
 */
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>

/* The loops are written in assembly so that the compiler can neither merge nor spill them. */
#define PEAK_R8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define PEAK_CLOBBER "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm13"

__attribute__((target("avx2"))) uint64_t peak_vpmaddwd(uint64_t steps, int32_t* sink) {
    uint64_t n = steps;
#define PEAK_MADD(i) "vpmaddwd %%ymm14, %%ymm15, %%ymm13\n vpaddd %%ymm13, %%ymm" #i ", %%ymm" #i "\n"
    __asm__ volatile("1:\n" PEAK_R8(PEAK_MADD) "dec %0\n jnz 1b\n" : "+r"(n) : : PEAK_CLOBBER);
    *sink = 0;
    return steps * 8u * 16u;
}

__attribute__((target("avx2"))) uint64_t peak_vpmaddubsw(uint64_t steps, int32_t* sink) {
    uint64_t n = steps;
#define PEAK_MADDUBS(i)                                                                     \
    "vpmaddubsw %%ymm14, %%ymm15, %%ymm13\n vpmaddwd %%ymm12, %%ymm13, %%ymm13\n"           \
    "vpaddd %%ymm13, %%ymm" #i ", %%ymm" #i "\n"
    __asm__ volatile("1:\n" PEAK_R8(PEAK_MADDUBS) "dec %0\n jnz 1b\n" : "+r"(n) : : PEAK_CLOBBER);
    *sink = 0;
    return steps * 8u * 32u;
}

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

__attribute__((target("avx512f,avx512bw,avx512vnni"))) uint64_t peak_vpdpbusd(uint64_t steps,
                                                                             int32_t* sink) {
    const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
    __m512i c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    __m512i c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
    for (uint64_t i = 0; i < steps; i++) {
        c0 = _mm512_dpbusd_epi32(c0, a, b);
        c1 = _mm512_dpbusd_epi32(c1, a, b);
        c2 = _mm512_dpbusd_epi32(c2, a, b);
        c3 = _mm512_dpbusd_epi32(c3, a, b);
        c4 = _mm512_dpbusd_epi32(c4, a, b);
        c5 = _mm512_dpbusd_epi32(c5, a, b);
        c6 = _mm512_dpbusd_epi32(c6, a, b);
        c7 = _mm512_dpbusd_epi32(c7, a, b);
        c8 = _mm512_dpbusd_epi32(c8, a, b);
        c9 = _mm512_dpbusd_epi32(c9, a, b);
        c10 = _mm512_dpbusd_epi32(c10, a, b);
        c11 = _mm512_dpbusd_epi32(c11, a, b);
    }
    __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c0, c1), c2),
                                 _mm512_add_epi32(_mm512_add_epi32(c3, c4), c5));
    s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(c6, c7), c8));
    s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(c9, c10), c11));
    *sink = _mm512_reduce_add_epi32(s);
    return steps * 12u * 64u;
}

typedef struct tile_config {
    uint8_t palette_id;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

__attribute__((target("amx-tile,amx-int8"))) uint64_t peak_tdpbusd(uint64_t steps,
                                                                   int32_t* sink) {
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) return 0;
    static int8_t src[16 * 64];
    static int32_t dst[16 * 16];
    memset(src, 1, sizeof src);
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette_id = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, src, 64);
    _tile_loadd(5, src, 64);
    _tile_loadd(6, src, 64);
    _tile_loadd(7, src, 64);
    for (uint64_t i = 0; i < steps; i++) {
        _tile_dpbusd(0, 4, 6);
        _tile_dpbusd(1, 4, 7);
        _tile_dpbusd(2, 5, 6);
        _tile_dpbusd(3, 5, 7);
    }
    _tile_stored(0, dst, 64);
    _tile_release();
    *sink = dst[0];
    return steps * 4u * 16u * 16u * 64u;
}
#endif
