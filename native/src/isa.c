/* CPU feature detection (once), the active ISA and the ONNXQ_ISA override.
 *
 * x86-64: cpuid leaves 1 and 7 plus xgetbv for the OS-enabled register state; AMX additionally
 * needs the kernel to grant XTILEDATA (arch_prctl(ARCH_REQ_XCOMP_PERM, 18)), and counts as
 * unavailable when it refuses. aarch64: getauxval(AT_HWCAP) for ASIMD and ASIMDDP.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/internal.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

static const char* const isa_names[ONNXQ_ISA_COUNT] = {
    "scalar", "avx2", "avxvnni", "avx512vnni", "amx", "neon", "neondot",
};
/* Rank within the architecture; scalar ranks 0 on both. */
static const int isa_rank[ONNXQ_ISA_COUNT] = {0, 1, 2, 3, 4, 1, 2};
static const int isa_is_arm[ONNXQ_ISA_COUNT] = {0, 0, 0, 0, 0, 1, 1};

static pthread_once_t detect_once = PTHREAD_ONCE_INIT;
static unsigned available_mask = 1u;
static _Atomic int active_isa = ONNXQ_ISA_SCALAR;
static char notes[256];
static char env_error[640];

#if defined(__x86_64__)
static unsigned long long read_xcr0(void) {
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static unsigned detect_x86(void) {
    unsigned mask = 1u << ONNXQ_ISA_SCALAR;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return mask;
    const int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1;
    if (!osxsave || __get_cpuid_max(0, NULL) < 7) return mask;
    const unsigned long long xcr0 = read_xcr0();
    const int os_avx = (xcr0 & 0x6) == 0x6;
    const int os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;
    const int os_amx = (xcr0 & 0x60000) == 0x60000;
    unsigned b7, c7, d7, a71 = 0, tmp;
    __cpuid_count(7, 0, a, b7, c7, d7);
    const unsigned max_sub7 = a;
    if (max_sub7 >= 1) __cpuid_count(7, 1, a71, tmp, tmp, tmp);
    const int avx2 = (b7 >> 5) & 1;
    const int avx512f = (b7 >> 16) & 1, avx512dq = (b7 >> 17) & 1;
    const int avx512bw = (b7 >> 30) & 1, avx512vl = (b7 >> 31) & 1;
    const int avx512vnni = (c7 >> 11) & 1;
    const int amx_tile = (d7 >> 24) & 1, amx_int8 = (d7 >> 25) & 1;
    const int avxvnni = (a71 >> 4) & 1;
    if (!(os_avx && avx2 && fma)) return mask;
    mask |= 1u << ONNXQ_ISA_AVX2;
    if (avxvnni) mask |= 1u << ONNXQ_ISA_AVXVNNI;
    if (!(os_avx512 && avx512f && avx512dq && avx512bw && avx512vl && avx512vnni)) return mask;
    mask |= 1u << ONNXQ_ISA_AVX512VNNI;
    if (amx_tile && amx_int8) {
        if (!os_amx) {
            snprintf(notes, sizeof notes, "amx: the OS does not enable the tile state (XCR0)");
        } else {
            /* ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 */
            long rc = syscall(SYS_arch_prctl, 0x1023, 18);
            if (rc == 0)
                mask |= 1u << ONNXQ_ISA_AMX;
            else
                snprintf(notes, sizeof notes, "amx: the kernel refused XTILEDATA permission");
        }
    }
    return mask;
}
#endif

static int best_of(unsigned mask) {
    int best = ONNXQ_ISA_SCALAR;
    for (int i = 0; i < ONNXQ_ISA_COUNT; ++i)
        if (((mask >> i) & 1u) && isa_rank[i] > isa_rank[best]) best = i;
    return best;
}

static int parse_isa(const char* name) {
    for (int i = 0; i < ONNXQ_ISA_COUNT; ++i)
        if (strcmp(name, isa_names[i]) == 0) return i;
    return -1;
}

static void detect(void) {
#if defined(__x86_64__)
    available_mask = detect_x86();
#elif defined(__aarch64__)
    unsigned long hw = getauxval(AT_HWCAP);
    available_mask = 1u;
    if (hw & HWCAP_ASIMD) available_mask |= 1u << ONNXQ_ISA_NEON;
    if ((hw & HWCAP_ASIMD) && (hw & HWCAP_ASIMDDP)) available_mask |= 1u << ONNXQ_ISA_NEONDOT;
#endif
    int active = best_of(available_mask);
    const char* env = getenv("ONNXQ_ISA");
    if (env != NULL && env[0] != '\0' && strcmp(env, "auto") != 0) {
        int want = parse_isa(env);
        if (want < 0) {
            snprintf(env_error, sizeof env_error,
                     "ONNXQ_ISA=%.32s is not an ISA name (expected one of scalar, avx2, avxvnni, "
                     "avx512vnni, amx, neon, neondot, auto)", env);
            active = -1;
        } else if (!((available_mask >> want) & 1u)) {
            snprintf(env_error, sizeof env_error, "ONNXQ_ISA=%s but this CPU lacks %s%s%s", env,
                     env, notes[0] ? "; " : "", notes);
            active = -1;
        } else {
            active = want;
        }
    }
    atomic_store(&active_isa, active);
}

static void ensure_detected(void) { pthread_once(&detect_once, detect); }

unsigned onnxq_isa_mask(void) {
    ensure_detected();
    return available_mask;
}

int onnxq_isa_available(unsigned mask) {
    ensure_detected();
    return (mask & ~available_mask) == 0;
}

int onnxq_isa_active(void) {
    ensure_detected();
    return atomic_load(&active_isa);
}

const char* onnxq_isa_name(int isa) {
    return (isa >= 0 && isa < ONNXQ_ISA_COUNT) ? isa_names[isa] : "?";
}

const char* onnxq_isa_notes(void) {
    ensure_detected();
    return notes;
}

int onnxq_isa_set(const char* name) {
    ensure_detected();
    if (name == NULL || name[0] == '\0' || strcmp(name, "auto") == 0) {
        atomic_store(&active_isa, best_of(available_mask));
        return ONNXQ_OK;
    }
    int want = parse_isa(name);
    if (want < 0)
        return onnxq_error(ONNXQ_E_ARG,
                           "isa '%.32s' is not an ISA name (expected one of scalar, avx2, avxvnni, "
                           "avx512vnni, amx, neon, neondot, auto)", name);
    if (!((available_mask >> want) & 1u))
        return onnxq_error(ONNXQ_E_ISA, "isa '%s' is not available on this CPU%s%s", name,
                           notes[0] ? "; " : "", notes);
    atomic_store(&active_isa, want);
    return ONNXQ_OK;
}

int onnxq_isa_usable(int isa) {
    ensure_detected();
    const int active = atomic_load(&active_isa);
    if (isa < 0 || isa >= ONNXQ_ISA_COUNT || active < 0) return 0;
    if (isa == ONNXQ_ISA_SCALAR) return 1;
    if (!((available_mask >> isa) & 1u)) return 0;
    return isa_is_arm[isa] == isa_is_arm[active] && isa_rank[isa] <= isa_rank[active];
}

int onnxq_isa_status(void) { return onnxq_isa_check(); }

int onnxq_isa_check(void) {
    ensure_detected();
    if (atomic_load(&active_isa) < 0) return onnxq_error(ONNXQ_E_ISA, "%s", env_error);
    return ONNXQ_OK;
}
