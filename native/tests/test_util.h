/* Tiny self-checking test helpers of the C test driver (plain C, no framework). */
#ifndef ONNXQ_TEST_UTIL_H
#define ONNXQ_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "onnxq/onnxq.h"

extern long onnxq_test_passed;
extern long onnxq_test_failed;

/* Records one check; prints the first failures with their location. */
void onnxq_test_record(int ok, const char* file, int line, const char* fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The condition is evaluated first, so the message arguments see its effects (outputs written,
 * onnxq_last_error() set by the call under test). */
#define ONNXQ_EXPECT(cond, ...)                                              \
    do {                                                                     \
        const int onnxq_expect_ok_ = (cond) ? 1 : 0;                         \
        onnxq_test_record(onnxq_expect_ok_, __FILE__, __LINE__, __VA_ARGS__); \
    } while (0)

/* Runs the following statement once per available ISA, with that ISA active. */
#define ONNXQ_TEST_FOREACH_ISA(isa)                                         \
    for (int isa = 0; isa < ONNXQ_ISA_COUNT; ++isa)                        \
        if (onnxq_isa_available(1u << isa) && onnxq_isa_set(onnxq_isa_name(isa)) == ONNXQ_OK)

/* Deterministic pseudo-random numbers (xorshift64*), seeded by onnxq_test_seed. */
void onnxq_test_seed(uint64_t seed);
uint64_t onnxq_test_next(void);
/* Uniform integer in [lo, hi]. */
int32_t onnxq_test_rand_int(int32_t lo, int32_t hi);
/* Uniform float in [lo, hi). */
float onnxq_test_rand_float(float lo, float hi);
void onnxq_test_fill_u8(uint8_t* p, size_t n, int lo, int hi);
void onnxq_test_fill_s8(int8_t* p, size_t n, int lo, int hi);
void onnxq_test_fill_f32(float* p, size_t n, float lo, float hi);

#endif /* ONNXQ_TEST_UTIL_H */
