/* C test driver: runs onnxq_test_<family>() for every family of kernels.list, prints
 * "N passed, N failed" and exits 1 on any failure. Each family's test compares every available
 * ISA against the scalar kernels and checks bad input; see native/README.md. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "onnxq_kernels.h"
#include "test_util.h"

long onnxq_test_passed = 0;
long onnxq_test_failed = 0;
static long printed = 0;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

void onnxq_test_record(int ok, const char* file, int line, const char* fmt, ...) {
    if (ok) {
        ++onnxq_test_passed;
        return;
    }
    ++onnxq_test_failed;
    if (printed++ >= 50) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s:%d [isa %s] ", file, line, onnxq_isa_name(onnxq_isa_active()));
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void onnxq_test_seed(uint64_t seed) { rng_state = seed ? seed : 0x9e3779b97f4a7c15ull; }

uint64_t onnxq_test_next(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

int32_t onnxq_test_rand_int(int32_t lo, int32_t hi) {
    const uint64_t span = (uint64_t)((int64_t)hi - (int64_t)lo) + 1u;
    return (int32_t)((int64_t)lo + (int64_t)(onnxq_test_next() % span));
}

float onnxq_test_rand_float(float lo, float hi) {
    return lo + (hi - lo) * (float)((onnxq_test_next() >> 40) * (1.0 / 16777216.0));
}

void onnxq_test_fill_u8(uint8_t* p, size_t n, int lo, int hi) {
    for (size_t i = 0; i < n; ++i) p[i] = (uint8_t)onnxq_test_rand_int(lo, hi);
}

void onnxq_test_fill_s8(int8_t* p, size_t n, int lo, int hi) {
    for (size_t i = 0; i < n; ++i) p[i] = (int8_t)onnxq_test_rand_int(lo, hi);
}

void onnxq_test_fill_f32(float* p, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; ++i) p[i] = onnxq_test_rand_float(lo, hi);
}

#define DECLARE(f) void onnxq_test_##f(void) __attribute__((weak));
ONNXQ_FAMILIES(DECLARE)
#undef DECLARE

static void run_family(const char* name, void (*fn)(void), const char* only) {
    if (only != NULL && strcmp(only, name) != 0) return;
    const long p0 = onnxq_test_passed, f0 = onnxq_test_failed;
    if (fn == NULL) {
        onnxq_test_record(0, __FILE__, __LINE__, "family %s has no test (define onnxq_test_%s)",
                          name, name);
    } else {
        onnxq_test_seed(0x5eed0000u + (uint64_t)strlen(name));
        fn();
    }
    onnxq_isa_set(NULL);
    printf("%-10s %ld passed, %ld failed\n", name, onnxq_test_passed - p0,
           onnxq_test_failed - f0);
}

int main(int argc, char** argv) {
    const char* only = argc > 1 ? argv[1] : NULL;
    printf("available ISAs:");
    for (int i = 0; i < ONNXQ_ISA_COUNT; ++i)
        if (onnxq_isa_available(1u << i)) printf(" %s", onnxq_isa_name(i));
    printf("%s%s\n", onnxq_isa_notes()[0] ? "  (" : "", onnxq_isa_notes());
#define RUN(f) run_family(#f, onnxq_test_##f, only);
    ONNXQ_FAMILIES(RUN)
#undef RUN
    printf("%ld passed, %ld failed\n", onnxq_test_passed, onnxq_test_failed);
    return onnxq_test_failed == 0 ? 0 : 1;
}
