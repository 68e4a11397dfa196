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

/* *need = (rows - 1) * ld + cols: the elements spanned by rows rows of cols elements, ld apart
 * (0 when rows or cols is 0); returns 1 on overflow. */
static inline int onnxq_span(size_t rows, size_t cols, size_t ld, size_t* need) {
    if (rows == 0 || cols == 0) {
        *need = 0;
        return 0;
    }
    size_t t;
    if (__builtin_mul_overflow(rows - 1, ld, &t) || __builtin_add_overflow(t, cols, need)) return 1;
    return 0;
}

/* Checks an array argument of a public entry point: ptr is not NULL and len (elements the caller
 * says ptr holds) equals need (exact != 0) or is at least need (exact == 0). Sets a one-line
 * message naming `name` ("<what>: <name> has 3 values, expected 4") and returns the status. */
int onnxq_check_array(const char* what, const char* name, const void* ptr, size_t len, size_t need,
                      int exact);

#define ONNXQ_CHECK_NOT_NULL(ptr, what)                                            \
    do {                                                                           \
        if ((ptr) == NULL) return onnxq_error(ONNXQ_E_ARG, "%s is NULL", (what)); \
    } while (0)

#endif /* ONNXQ_INTERNAL_H */
