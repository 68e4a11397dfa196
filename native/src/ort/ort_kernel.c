/* onnxruntime custom-op plumbing: statuses that name the node, attributes, and the tensors a
 * kernel reads and writes. Quantization parameters and GEMM tiling are in ort_weights.c, the
 * OrtCustomOp callbacks and RegisterCustomOps in ort_register.c. See ort_kernel.h. */
#include "ort/ort_kernel.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnxq/onnxq.h"

onnxq_ort onnxq_ort_api;

/* ---- statuses ----------------------------------------------------------------------------- */

static OrtStatus* vfail(int code, const onnxq_ort_node* node, const char* fmt, va_list ap) {
    char msg[768];
    int n = 0;
    if (node != NULL) n = snprintf(msg, sizeof msg, "onnxq %s node '%s': ", node->op, node->name);
    if (n < 0 || (size_t)n >= sizeof msg) n = 0;
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    return onnxq_ort_api.CreateStatus(code, msg);
}

OrtStatus* onnxq_ort_fail(const onnxq_ort_node* node, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    OrtStatus* s = vfail(ORT_INVALID_ARGUMENT, node, fmt, ap);
    va_end(ap);
    return s;
}

OrtStatus* onnxq_ort_fail_code(int code, const onnxq_ort_node* node, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    OrtStatus* s = vfail(code, node, fmt, ap);
    va_end(ap);
    return s;
}

OrtStatus* onnxq_ort_kernel_error(const onnxq_ort_node* node, int status) {
    int code = status == ONNXQ_E_ARG || status == ONNXQ_E_SHAPE ? ORT_INVALID_ARGUMENT : ORT_FAIL;
    return onnxq_ort_fail_code(code, node, "%s", onnxq_last_error());
}

OrtStatus* onnxq_ort_wrap(const onnxq_ort_node* node, OrtStatus* status, const char* what) {
    int code = onnxq_ort_api.GetErrorCode(status);
    OrtStatus* s = onnxq_ort_fail_code(code == ORT_OK ? ORT_FAIL : code, node, "%s: %s", what,
                                       onnxq_ort_api.GetErrorMessage(status));
    onnxq_ort_api.ReleaseStatus(status);
    return s;
}

/* ---- attributes --------------------------------------------------------------------------- */

OrtStatus* onnxq_ort_attr_int(const OrtKernelInfo* info, const onnxq_ort_node* node,
                              const char* name, int64_t lo, int64_t hi, int64_t* out) {
    OrtStatus* s = onnxq_ort_api.KernelInfoGetAttribute_int64(info, name, out);
    if (s != NULL) return onnxq_ort_wrap(node, s, name);
    if (*out < lo || *out > hi)
        return onnxq_ort_fail(node, "attribute %s is %lld, expected %lld to %lld", name,
                              (long long)*out, (long long)lo, (long long)hi);
    return NULL;
}

OrtStatus* onnxq_ort_attr_ints(const OrtKernelInfo* info, const onnxq_ort_node* node,
                               const char* name, size_t n, int64_t lo, int64_t hi, int64_t* out) {
    size_t size = 0;
    OrtStatus* s = onnxq_ort_api.KernelInfoGetAttributeArray_int64(info, name, NULL, &size);
    if (s != NULL) return onnxq_ort_wrap(node, s, name);
    if (size != n)
        return onnxq_ort_fail(node, "attribute %s has %zu values, expected %zu", name, size, n);
    int64_t values[ONNXQ_ORT_MAX_DIMS];
    if (n > ONNXQ_ORT_MAX_DIMS) return onnxq_ort_fail(node, "attribute %s: too many values", name);
    s = onnxq_ort_api.KernelInfoGetAttributeArray_int64(info, name, values, &size);
    if (s != NULL) return onnxq_ort_wrap(node, s, name);
    for (size_t i = 0; i < n; i++) {
        if (values[i] < lo || values[i] > hi)
            return onnxq_ort_fail(node, "attribute %s[%zu] is %lld, expected %lld to %lld", name, i,
                                  (long long)values[i], (long long)lo, (long long)hi);
        out[i] = values[i];
    }
    return NULL;
}

OrtStatus* onnxq_ort_attr_choice(const OrtKernelInfo* info, const onnxq_ort_node* node,
                                 const char* name, const char* const* choices, int* index) {
    char value[64];
    size_t size = 0;
    OrtStatus* s = onnxq_ort_api.KernelInfoGetAttribute_string(info, name, NULL, &size);
    if (s != NULL) return onnxq_ort_wrap(node, s, name);
    if (size == 0 || size > sizeof value)
        return onnxq_ort_fail(node, "attribute %s is not one of the values it takes", name);
    s = onnxq_ort_api.KernelInfoGetAttribute_string(info, name, value, &size);
    if (s != NULL) return onnxq_ort_wrap(node, s, name);
    value[sizeof value - 1] = '\0';
    for (int i = 0; choices[i] != NULL; i++) {
        if (strcmp(value, choices[i]) == 0) {
            *index = i;
            return NULL;
        }
    }
    return onnxq_ort_fail(node, "attribute %s is '%s', not a value it takes", name, value);
}

/* ---- tensors ------------------------------------------------------------------------------ */

static const char* type_name(int type) {
    switch (type) {
        case ORT_TYPE_FLOAT: return "float32";
        case ORT_TYPE_UINT8: return "uint8";
        case ORT_TYPE_INT8: return "int8";
        case ORT_TYPE_INT32: return "int32";
        case ORT_TYPE_INT64: return "int64";
        default: return "another type";
    }
}

OrtStatus* onnxq_ort_describe(const onnxq_ort_node* node, const OrtValue* value, const char* what,
                              int want, onnxq_ort_tensor* t) {
    OrtTensorTypeAndShapeInfo* info = NULL;
    OrtStatus* s = onnxq_ort_api.GetTensorTypeAndShape(value, &info);
    if (s != NULL) return onnxq_ort_wrap(node, s, what);
    memset(t, 0, sizeof *t);
    if ((s = onnxq_ort_api.GetTensorElementType(info, &t->type)) != NULL ||
        (s = onnxq_ort_api.GetDimensionsCount(info, &t->ndim)) != NULL) {
        onnxq_ort_api.ReleaseTensorTypeAndShapeInfo(info);
        return onnxq_ort_wrap(node, s, what);
    }
    if (t->ndim > ONNXQ_ORT_MAX_DIMS) {
        onnxq_ort_api.ReleaseTensorTypeAndShapeInfo(info);
        return onnxq_ort_fail(node, "%s has rank %zu, more than onnxq's ops take", what, t->ndim);
    }
    s = onnxq_ort_api.GetDimensions(info, t->dims, t->ndim);
    onnxq_ort_api.ReleaseTensorTypeAndShapeInfo(info);
    if (s != NULL) return onnxq_ort_wrap(node, s, what);
    if (want != ORT_TYPE_UNDEFINED && t->type != want)
        return onnxq_ort_fail(node, "%s is %s, expected %s", what, type_name(t->type),
                              type_name(want));
    size_t count = 1;
    for (size_t i = 0; i < t->ndim; i++) {
        if (t->dims[i] < 0) return onnxq_ort_fail(node, "%s has a negative dimension", what);
        if (__builtin_mul_overflow(count, (size_t)t->dims[i], &count))
            return onnxq_ort_fail(node, "%s: element count overflows", what);
    }
    t->count = count;
    s = onnxq_ort_api.GetTensorMutableData((OrtValue*)value, &t->data); /* read only */
    if (s != NULL) return onnxq_ort_wrap(node, s, what);
    if (t->data == NULL && count != 0) return onnxq_ort_fail(node, "%s has no data", what);
    return NULL;
}

OrtStatus* onnxq_ort_constant(const OrtKernelInfo* info, const onnxq_ort_node* node, size_t index,
                              const char* what, int want, int optional, onnxq_ort_tensor* t) {
    size_t count = 0;
    OrtStatus* s = onnxq_ort_api.KernelInfo_GetInputCount(info, &count);
    if (s != NULL) return onnxq_ort_wrap(node, s, what);
    memset(t, 0, sizeof *t);
    if (index >= count) {
        if (optional) return NULL;
        return onnxq_ort_fail(node, "input %zu (%s) is missing", index, what);
    }
    int is_constant = 0;
    const OrtValue* value = NULL;
    s = onnxq_ort_api.KernelInfoGetConstantInput_tensor(info, index, &is_constant, &value);
    if (s != NULL) return onnxq_ort_wrap(node, s, what);
    if (!is_constant || value == NULL) {
        return onnxq_ort_fail(node, "%s must be a constant (an initializer), read once when the "
                              "session is created", what);
    }
    return onnxq_ort_describe(node, value, what, want, t);
}

OrtStatus* onnxq_ort_optional_constant(const OrtKernelInfo* info, const onnxq_ort_node* node,
                                       size_t index, const char* what, int want, onnxq_ort_tensor* t) {
    size_t count = 0;
    OrtStatus* s = onnxq_ort_api.KernelInfo_GetInputCount(info, &count);
    if (s != NULL) return onnxq_ort_wrap(node, s, what);
    memset(t, 0, sizeof *t);
    if (index >= count) return NULL;
    int is_constant = 0;
    const OrtValue* value = NULL;
    if ((s = onnxq_ort_api.KernelInfoGetConstantInput_tensor(info, index, &is_constant, &value)) != NULL)
        return onnxq_ort_wrap(node, s, what);
    return is_constant && value != NULL ? onnxq_ort_describe(node, value, what, want, t) : NULL;
}

OrtStatus* onnxq_ort_optional_input(OrtKernelContext* ctx, const onnxq_ort_node* node, size_t index,
                                    const char* what, int want, onnxq_ort_tensor* t) {
    memset(t, 0, sizeof *t);
    size_t count = 0;
    OrtStatus* s = onnxq_ort_input_count(ctx, node, &count);
    if (s != NULL || index >= count) return s;
    const OrtValue* value = NULL;
    if ((s = onnxq_ort_api.KernelContext_GetInput(ctx, index, &value)) != NULL)
        return onnxq_ort_wrap(node, s, what);
    return value == NULL ? NULL : onnxq_ort_describe(node, value, what, want, t);
}

OrtStatus* onnxq_ort_matmul_io(OrtKernelContext* ctx, const onnxq_ort_node* node, size_t k, size_t n,
                               onnxq_ort_tensor* a, onnxq_ort_tensor* y, size_t* m) {
    *m = 0;
    OrtStatus* s = onnxq_ort_input(ctx, node, 0, "a", ORT_TYPE_FLOAT, a);
    if (s != NULL) return s;
    if (a->ndim < 1 || (size_t)a->dims[a->ndim - 1] != k)
        return onnxq_ort_fail(node, "a must have %zu values along its last axis (K of the weights)", k);
    int64_t dims[ONNXQ_ORT_MAX_DIMS];
    memcpy(dims, a->dims, a->ndim * sizeof dims[0]);
    dims[a->ndim - 1] = (int64_t)n;
    if ((s = onnxq_ort_output(ctx, node, 0, dims, a->ndim, ORT_TYPE_FLOAT, y)) != NULL) return s;
    const size_t rows = a->count / k;
    if (rows != 0 && y->count != rows * n)
        return onnxq_ort_fail(node, "the runtime gave an output of %zu values, expected %zu", y->count, rows * n);
    *m = rows;
    return NULL;
}

OrtStatus* onnxq_ort_constant_scalar(const OrtKernelInfo* info, const onnxq_ort_node* node,
                                     size_t index, const char* what, int want, onnxq_ort_tensor* t) {
    OrtStatus* s = onnxq_ort_constant(info, node, index, what, want, 0, t);
    if (s != NULL) return s;
    if (t->count != 1) return onnxq_ort_fail(node, "%s has %zu values, expected one", what, t->count);
    return NULL;
}

OrtStatus* onnxq_ort_input_count(OrtKernelContext* ctx, const onnxq_ort_node* node, size_t* count) {
    *count = 0;
    OrtStatus* s = onnxq_ort_api.KernelContext_GetInputCount(ctx, count);
    return s == NULL ? NULL : onnxq_ort_wrap(node, s, "input count");
}

OrtStatus* onnxq_ort_input(OrtKernelContext* ctx, const onnxq_ort_node* node, size_t index,
                           const char* what, int want, onnxq_ort_tensor* t) {
    const OrtValue* value = NULL;
    OrtStatus* s = onnxq_ort_api.KernelContext_GetInput(ctx, index, &value);
    if (s != NULL) return onnxq_ort_wrap(node, s, what);
    if (value == NULL) return onnxq_ort_fail(node, "input %zu (%s) is missing", index, what);
    return onnxq_ort_describe(node, value, what, want, t);
}

OrtStatus* onnxq_ort_output(OrtKernelContext* ctx, const onnxq_ort_node* node, size_t index,
                            const int64_t* dims, size_t ndim, int want, onnxq_ort_tensor* t) {
    OrtValue* value = NULL;
    OrtStatus* s = onnxq_ort_api.KernelContext_GetOutput(ctx, index, dims, ndim, &value);
    if (s != NULL) return onnxq_ort_wrap(node, s, "output");
    if (value == NULL) return onnxq_ort_fail(node, "the runtime gave no output %zu", index);
    return onnxq_ort_describe(node, value, "output", want, t);
}
