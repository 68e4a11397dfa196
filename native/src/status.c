/* Thread-local error message of the public entry points. */
#include <stdarg.h>
#include <stdio.h>

#include "common/internal.h"

static _Thread_local char last_error[512];

const char* onnxq_last_error(void) { return last_error; }

int onnxq_error(int status, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

int onnxq_check_array(const char* what, const char* name, const void* ptr, size_t len, size_t need,
                      int exact) {
    if (ptr == NULL) return onnxq_error(ONNXQ_E_ARG, "%s: %s is NULL", what, name);
    if (exact ? len != need : len < need)
        return onnxq_error(ONNXQ_E_SHAPE, "%s: %s has %zu values, expected %s%zu", what, name, len,
                           exact ? "" : "at least ", need);
    return ONNXQ_OK;
}

const char* onnxq_status_name(int status) {
    switch (status) {
        case ONNXQ_OK: return "ok";
        case ONNXQ_E_ARG: return "bad argument";
        case ONNXQ_E_SHAPE: return "bad shape";
        case ONNXQ_E_ISA: return "ISA not available";
        case ONNXQ_E_NOMEM: return "out of memory";
        case ONNXQ_E_INTERNAL: return "internal error";
        default: return "unknown status";
    }
}
