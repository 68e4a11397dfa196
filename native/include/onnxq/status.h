/* Status codes and the thread-local error message of every public entry point.
 *
 * A public entry point returns ONNXQ_OK (0) or one of the error codes below; on error it has set a
 * one-line message (readable with onnxq_last_error() on the same thread) and written no output.
 */
#ifndef ONNXQ_STATUS_H
#define ONNXQ_STATUS_H

typedef enum onnxq_status {
    ONNXQ_OK = 0,
    ONNXQ_E_ARG = 1,      /* bad argument value (NULL pointer, zero point out of range, ...) */
    ONNXQ_E_SHAPE = 2,    /* sizes that do not agree, zero-size tensors, overflowing products */
    ONNXQ_E_ISA = 3,      /* an ISA was requested that this CPU (or OS) does not provide */
    ONNXQ_E_NOMEM = 4,    /* a scratch allocation failed */
    ONNXQ_E_INTERNAL = 5  /* a bug: please report */
} onnxq_status;

/* Message of the last error on this thread ("" when none); valid until the next failing call. */
const char* onnxq_last_error(void);

/* Name of a status code ("ok", "bad argument", ...). */
const char* onnxq_status_name(int status);

#endif /* ONNXQ_STATUS_H */
