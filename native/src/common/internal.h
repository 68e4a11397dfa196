/* Helpers shared by the kernel families (not part of the public API). */
#ifndef ONNXQ_INTERNAL_H
#define ONNXQ_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "onnxq/onnxq.h"

/* Sets the thread-local error message (printf format, one line) and returns status. */
int onnxq_error(int status, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

/* ONNXQ_OK, or ONNXQ_E_ISA with the message set when ONNXQ_ISA named an unusable ISA. */
int onnxq_isa_check(void);

/* r = a * b; returns 1 on overflow. */
static inline int onnxq_mul_overflow(size_t a, size_t b, size_t* r) {
    return __builtin_mul_overflow(a, b, r);
}

/* Smallest multiple of m (a power of two) >= x. */
static inline size_t onnxq_round_up(size_t x, size_t m) { return (x + m - 1) & ~(m - 1); }

#define ONNXQ_CHECK_NOT_NULL(ptr, what)                                            \
    do {                                                                           \
        if ((ptr) == NULL) return onnxq_error(ONNXQ_E_ARG, "%s is NULL", (what)); \
    } while (0)

#endif /* ONNXQ_INTERNAL_H */
