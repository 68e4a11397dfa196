/* onnxruntime custom-op plumbing and RegisterCustomOps, the entry point onnxruntime calls when
 * SessionOptions.register_custom_ops_library names this shared object. See ort_kernel.h. */
#include "ort/ort_kernel.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnxq/onnxq.h"

onnxq_ort onnxq_ort_api;

/* The domain of onnxq's ops and its one opset version. */
static const char ONNXQ_ORT_DOMAIN[] = "ai.onnxq";
enum { ONNXQ_ORT_OPSET = 1 };

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

OrtStatus* onnxq_ort_scale(const onnxq_ort_node* node, const onnxq_ort_tensor* t, const char* what,
                           float* out) {
    float v = ((const float*)t->data)[0];
    if (!isfinite(v) || !(v > 0.0f))
        return onnxq_ort_fail(node, "%s is %g, expected a finite scale > 0", what, (double)v);
    *out = v;
    return NULL;
}

int32_t onnxq_ort_zero_point(const onnxq_ort_tensor* t) {
    if (t->type == ORT_TYPE_INT8) return ((const int8_t*)t->data)[0];
    return ((const uint8_t*)t->data)[0];
}

OrtStatus* onnxq_ort_weight_scales(const onnxq_ort_node* node, const onnxq_ort_tensor* w_scale,
                                   const onnxq_ort_tensor* w_zero_point, size_t n, float** scales) {
    *scales = NULL;
    if (w_scale->count != 1 && w_scale->count != n)
        return onnxq_ort_fail(node, "w_scale has %zu values, expected 1 or %zu", w_scale->count, n);
    if (w_zero_point->count != 1 && w_zero_point->count != n)
        return onnxq_ort_fail(node, "w_zero_point has %zu values, expected 1 or %zu", w_zero_point->count, n);
    const int8_t* zp = w_zero_point->data;
    for (size_t i = 0; i < w_zero_point->count; i++)
        if (zp[i] != 0)
            return onnxq_ort_fail(node, "w_zero_point[%zu] is %d; onnxq's %s takes symmetric weights "
                                  "(zero point 0)", i, zp[i], node->op);
    float* out = malloc(w_scale->count * sizeof *out);
    if (out == NULL) return onnxq_ort_fail_code(ORT_FAIL, node, "out of memory");
    for (size_t i = 0; i < w_scale->count; i++) {
        onnxq_ort_tensor one = *w_scale;
        one.data = (float*)w_scale->data + i;
        OrtStatus* s = onnxq_ort_scale(node, &one, "w_scale", &out[i]);
        if (s != NULL) {
            free(out);
            return s;
        }
    }
    *scales = out;
    return NULL;
}

OrtStatus* onnxq_ort_pack_gemm(const onnxq_ort_node* node, const onnxq_ort_tensor* w, size_t k,
                               size_t n, ptrdiff_t stride_k, ptrdiff_t stride_n, void** packed,
                               size_t* packed_size) {
    *packed = NULL;
    *packed_size = onnxq_gemm_u8s8_packed_size(k, n);
    if (*packed_size == 0) return onnxq_ort_fail(node, "w is too large to pack");
    void* buf = aligned_alloc(64, (*packed_size + 63) & ~(size_t)63);
    if (buf == NULL) return onnxq_ort_fail_code(ORT_FAIL, node, "out of memory");
    int st = onnxq_gemm_u8s8_pack(w->data, w->count, k, n, stride_k, stride_n, 0, buf, *packed_size);
    if (st != 0) {
        free(buf);
        return onnxq_ort_kernel_error(node, st);
    }
    *packed = buf;
    return NULL;
}

onnxq_ort_gemm_tiles onnxq_ort_gemm_tiling(size_t m, size_t n) {
    onnxq_ort_gemm_tiles t = {m, n, 1, 0, 0};
    const size_t blocks = (n + 15) / 16;
    size_t chunks = blocks / ONNXQ_ORT_GEMM_MIN_BLOCKS;
    chunks = chunks < 1 ? 1 : chunks > ONNXQ_ORT_GEMM_CHUNKS ? ONNXQ_ORT_GEMM_CHUNKS : chunks;
    t.chunk_cols = (blocks + chunks - 1) / chunks * 16;
    t.chunks = (n + t.chunk_cols - 1) / t.chunk_cols;
    t.count = (m + ONNXQ_ORT_GEMM_BAND - 1) / ONNXQ_ORT_GEMM_BAND * t.chunks;
    return t;
}

void onnxq_ort_gemm_tile(const onnxq_ort_gemm_tiles* t, size_t i, size_t* r0, size_t* rows,
                         size_t* col0, size_t* cols) {
    *r0 = i / t->chunks * ONNXQ_ORT_GEMM_BAND;
    *rows = t->m - *r0 < ONNXQ_ORT_GEMM_BAND ? t->m - *r0 : ONNXQ_ORT_GEMM_BAND;
    *col0 = i % t->chunks * t->chunk_cols;
    *cols = t->n - *col0 < t->chunk_cols ? t->n - *col0 : t->chunk_cols;
}

void onnxq_ort_job_fail(onnxq_ort_job_error* e, int status) {
    int expected = 0;
    if (status != 0 && atomic_compare_exchange_strong(&e->status, &expected, status))
        snprintf(e->message, sizeof e->message, "%s", onnxq_last_error());
}

OrtStatus* onnxq_ort_job_status(const onnxq_ort_node* node, onnxq_ort_job_error* e) {
    if (atomic_load(&e->status) == 0) return NULL;
    return onnxq_ort_fail_code(ORT_FAIL, node, "%s", e->message);
}

OrtStatus* onnxq_ort_parallel(OrtKernelContext* ctx, const onnxq_ort_node* node,
                              void (*fn)(void* data, size_t i), size_t n, void* data) {
    if (n <= 1) {
        if (n == 1) fn(data, 0);
        return NULL;
    }
    OrtStatus* s = onnxq_ort_api.KernelContext_ParallelFor(ctx, fn, n, 0, data);
    return s == NULL ? NULL : onnxq_ort_wrap(node, s, "parallel run");
}

/* ---- the OrtCustomOp callbacks, shared by every op ---------------------------------------- */

static const onnxq_ort_opdef* def_of(const OrtCustomOp* op) { return (const onnxq_ort_opdef*)op; }

static const char* op_name(const OrtCustomOp* op) { return def_of(op)->name; }
static const char* op_provider(const OrtCustomOp* op) {
    (void)op;
    return "CPUExecutionProvider";
}
static int op_input_type(const OrtCustomOp* op, size_t i) {
    return i < def_of(op)->n_inputs ? def_of(op)->input_types[i] : ORT_TYPE_UNDEFINED;
}
static size_t op_input_count(const OrtCustomOp* op) { return def_of(op)->n_inputs; }
static int op_output_type(const OrtCustomOp* op, size_t i) {
    return i < def_of(op)->n_outputs ? def_of(op)->output_types[i] : ORT_TYPE_UNDEFINED;
}
static size_t op_output_count(const OrtCustomOp* op) { return def_of(op)->n_outputs; }
static int op_input_characteristic(const OrtCustomOp* op, size_t i) {
    const onnxq_ort_opdef* def = def_of(op);
    if (def->variadic_min > 0 && i + 1 == def->n_inputs) return ORT_IO_VARIADIC;
    return i < def->n_required ? ORT_IO_REQUIRED : ORT_IO_OPTIONAL;
}
static int op_variadic_input_min(const OrtCustomOp* op) { return (int)def_of(op)->variadic_min; }
static int op_variadic_homogeneous(const OrtCustomOp* op) {
    (void)op;
    return 1; /* a variadic input's values all have the input's one type */
}
static int op_variadic_output_min(const OrtCustomOp* op) {
    (void)op;
    return 1; /* never asked: no output is variadic */
}
static int op_output_characteristic(const OrtCustomOp* op, size_t i) {
    (void)op;
    (void)i;
    return ORT_IO_REQUIRED;
}
static int op_input_memory(const OrtCustomOp* op, size_t i) {
    (void)op;
    (void)i;
    return ORT_MEM_DEFAULT;
}
static int op_version(const OrtCustomOp* op) {
    (void)op;
    return ONNXQ_ORT_OPSET;
}

static OrtStatus* op_create(const OrtCustomOp* op, const OrtApi* api, const OrtKernelInfo* info,
                            void** kernel) {
    (void)api; /* the same table RegisterCustomOps bound */
    const onnxq_ort_opdef* def = def_of(op);
    onnxq_ort_node node;
    node.op = def->name;
    size_t size = sizeof node.name;
    OrtStatus* s = onnxq_ort_api.KernelInfo_GetNodeName(info, node.name, &size);
    if (s != NULL) { /* a name longer than the buffer: keep its start */
        onnxq_ort_api.ReleaseStatus(s);
        char* longer = NULL;
        if (size > sizeof node.name && size < (1u << 20) && (longer = malloc(size)) != NULL) {
            s = onnxq_ort_api.KernelInfo_GetNodeName(info, longer, &size);
            if (s == NULL) snprintf(node.name, sizeof node.name, "%.*s...", (int)sizeof node.name - 4, longer);
            else onnxq_ort_api.ReleaseStatus(s);
            free(longer);
        } else {
            node.name[0] = '\0';
        }
    }
    node.name[sizeof node.name - 1] = '\0';
    *kernel = NULL;
    return def->create(info, node, kernel);
}

void onnxq_ort_opdef_init(onnxq_ort_opdef* def) {
    OrtCustomOp* b = &def->base;
    memset(b, 0, sizeof *b);
    b->version = ORT_TARGET_API;
    b->GetName = op_name;
    b->GetExecutionProviderType = op_provider;
    b->GetInputType = op_input_type;
    b->GetInputTypeCount = op_input_count;
    b->GetOutputType = op_output_type;
    b->GetOutputTypeCount = op_output_count;
    b->KernelDestroy = def->destroy;
    b->GetInputCharacteristic = op_input_characteristic;
    b->GetOutputCharacteristic = op_output_characteristic;
    b->GetInputMemoryType = op_input_memory;
    b->GetVariadicInputMinArity = op_variadic_input_min;
    b->GetVariadicInputHomogeneity = op_variadic_homogeneous;
    b->GetVariadicOutputMinArity = op_variadic_output_min;
    b->GetVariadicOutputHomogeneity = op_variadic_homogeneous;
    b->CreateKernelV2 = op_create;
    b->KernelComputeV2 = def->compute;
    b->GetStartVersion = op_version;
    b->GetEndVersion = op_version;
}

/* ---- registration ------------------------------------------------------------------------- */

static onnxq_ort_opdef* const ONNXQ_ORT_OPS[] = {
    &onnxq_ort_op_quantize,
    &onnxq_ort_op_dequantize,
    &onnxq_ort_op_qlinearconv,
    &onnxq_ort_op_qlinearadd,
    &onnxq_ort_op_maxpool,
    &onnxq_ort_op_qlinearglobalaveragepool,
    &onnxq_ort_op_qgemm,
    &onnxq_ort_op_qlinearconcat,
    &onnxq_ort_op_dynamicmatmul,
    &onnxq_ort_op_dynamicmatmulnbits,
    &onnxq_ort_op_dynamiclstm,
    &onnxq_ort_op_dynamicgru,
    &onnxq_ort_op_dynamicrnn,
};

static void bind(const OrtApi* api) {
    void* const* slot = (void* const*)api;
    onnxq_ort* o = &onnxq_ort_api;
#define ONNXQ_BIND(name) o->name = (ort_##name##_fn*)slot[ORT_SLOT_##name]
    ONNXQ_BIND(CreateStatus);
    ONNXQ_BIND(GetErrorCode);
    ONNXQ_BIND(GetErrorMessage);
    ONNXQ_BIND(CreateCustomOpDomain);
    ONNXQ_BIND(CustomOpDomain_Add);
    ONNXQ_BIND(AddCustomOpDomain);
    ONNXQ_BIND(GetTensorMutableData);
    ONNXQ_BIND(GetTensorElementType);
    ONNXQ_BIND(GetDimensionsCount);
    ONNXQ_BIND(GetDimensions);
    ONNXQ_BIND(GetTensorTypeAndShape);
    ONNXQ_BIND(KernelInfoGetAttribute_int64);
    ONNXQ_BIND(KernelInfoGetAttribute_string);
    ONNXQ_BIND(KernelContext_GetInputCount);
    ONNXQ_BIND(KernelContext_GetInput);
    ONNXQ_BIND(KernelContext_GetOutput);
    ONNXQ_BIND(ReleaseStatus);
    ONNXQ_BIND(ReleaseTensorTypeAndShapeInfo);
    ONNXQ_BIND(KernelInfoGetAttributeArray_int64);
    ONNXQ_BIND(KernelInfo_GetInputCount);
    ONNXQ_BIND(KernelInfo_GetNodeName);
    ONNXQ_BIND(KernelInfoGetConstantInput_tensor);
    ONNXQ_BIND(KernelContext_ParallelFor);
#undef ONNXQ_BIND
}

static pthread_once_t domain_once = PTHREAD_ONCE_INIT;
static OrtCustomOpDomain* domain;  /* lives as long as the process: sessions keep using it */
static char domain_error[512];

static const OrtApi* bound_api;

static void make_domain(void) {
    bind(bound_api);
    for (size_t i = 0; i < sizeof ONNXQ_ORT_OPS / sizeof ONNXQ_ORT_OPS[0]; i++)
        onnxq_ort_opdef_init(ONNXQ_ORT_OPS[i]);
    OrtCustomOpDomain* d = NULL;
    OrtStatus* s = onnxq_ort_api.CreateCustomOpDomain(ONNXQ_ORT_DOMAIN, &d);
    for (size_t i = 0; s == NULL && i < sizeof ONNXQ_ORT_OPS / sizeof ONNXQ_ORT_OPS[0]; i++)
        s = onnxq_ort_api.CustomOpDomain_Add(d, &ONNXQ_ORT_OPS[i]->base);
    if (s != NULL) {
        snprintf(domain_error, sizeof domain_error, "onnxq: cannot create the %s op domain: %s",
                 ONNXQ_ORT_DOMAIN, onnxq_ort_api.GetErrorMessage(s));
        onnxq_ort_api.ReleaseStatus(s);
        return; /* a half-built domain is never handed out (and not released: ops may be in it) */
    }
    domain = d;
}

__attribute__((visibility("default"))) OrtStatus* RegisterCustomOps(OrtSessionOptions* options,
                                                                     const OrtApiBase* base) {
    if (base == NULL || base->GetApi == NULL) return NULL; /* nothing to report through */
    const OrtApi* api = base->GetApi(ORT_TARGET_API);
    if (api == NULL) {
        const OrtApi* oldest = base->GetApi(1); /* every runtime has version 1 */
        if (oldest == NULL) return NULL;
        ort_CreateStatus_fn* create = (ort_CreateStatus_fn*)((void* const*)oldest)[ORT_SLOT_CreateStatus];
        char msg[256];
        snprintf(msg, sizeof msg,
                 "onnxq's custom ops need onnxruntime 1.%d or newer (C API version %d); this "
                 "onnxruntime is %s",
                 ORT_TARGET_API, ORT_TARGET_API,
                 base->GetVersionString != NULL ? base->GetVersionString() : "older");
        return create(ORT_FAIL, msg);
    }
    bound_api = api; /* one runtime per process: the same table every time */
    pthread_once(&domain_once, make_domain);
    if (domain == NULL) return onnxq_ort_api.CreateStatus(ORT_FAIL, domain_error);
    if (options == NULL) return onnxq_ort_api.CreateStatus(ORT_INVALID_ARGUMENT, "onnxq: no session options");
    return onnxq_ort_api.AddCustomOpDomain(options, domain);
}
