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
