/* Shared plumbing of onnxq's onnxruntime custom ops (private).
 *
 * An op is an onnxq_ort_opdef: the OrtCustomOp the runtime sees (first member, so the runtime's
 * `const OrtCustomOp*` is the def), its name, input and output types, and three functions:
 * create (reads attributes and constant inputs once, packs weights), compute and destroy.
 * Every failure becomes an OrtStatus whose message names the op and the node:
 * "onnxq QLinearConv node 'conv1': x has 3 channels, the weights expect 4".
 */
#ifndef ONNXQ_ORT_KERNEL_H
#define ONNXQ_ORT_KERNEL_H
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "ort/ort_abi.h"

/* The runtime's functions, bound by RegisterCustomOps before any op is created. */
extern onnxq_ort onnxq_ort_api;

enum { ONNXQ_ORT_MAX_IO = 12, ONNXQ_ORT_MAX_DIMS = 8, ONNXQ_ORT_NAME = 128 };

/* Who a message is about: the op type and the node's name. */
typedef struct onnxq_ort_node {
    const char* op;
    char name[ONNXQ_ORT_NAME];
} onnxq_ort_node;

typedef struct onnxq_ort_opdef {
    OrtCustomOp base; /* first: the runtime hands back &base */
    const char* name;
    size_t n_inputs;
    size_t n_required; /* inputs [n_required, n_inputs) are optional */
    size_t variadic_min; /* > 0: the last input is variadic, at least this many values of its type */
    int input_types[ONNXQ_ORT_MAX_IO];
    size_t n_outputs;
    int output_types[ONNXQ_ORT_MAX_IO];
    OrtStatus* (*create)(const OrtKernelInfo* info, onnxq_ort_node node, void** kernel);
    OrtStatus* (*compute)(void* kernel, OrtKernelContext* ctx);
    void (*destroy)(void* kernel);
} onnxq_ort_opdef;

/* Fills def->base (version ORT_TARGET_API, V2 callbacks) from the other fields. */
void onnxq_ort_opdef_init(onnxq_ort_opdef* def);

/* A status of code ORT_INVALID_ARGUMENT (or code) naming the node; printf format. */
OrtStatus* onnxq_ort_fail(const onnxq_ort_node* node, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));
OrtStatus* onnxq_ort_fail_code(int code, const onnxq_ort_node* node, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Turns an onnxq_status != 0 (message in onnxq_last_error) into a status naming the node. */
OrtStatus* onnxq_ort_kernel_error(const onnxq_ort_node* node, int status);
/* Wraps a failed runtime call: "<what>: <runtime's message>", the runtime's status released. */
OrtStatus* onnxq_ort_wrap(const onnxq_ort_node* node, OrtStatus* status, const char* what);

/* Attributes (all required: the lowering writes every one). */
OrtStatus* onnxq_ort_attr_int(const OrtKernelInfo* info, const onnxq_ort_node* node,
                              const char* name, int64_t lo, int64_t hi, int64_t* out);
/* Exactly n values (n <= ONNXQ_ORT_MAX_DIMS), each in [lo, hi]. */
OrtStatus* onnxq_ort_attr_ints(const OrtKernelInfo* info, const onnxq_ort_node* node,
                               const char* name, size_t n, int64_t lo, int64_t hi, int64_t* out);
/* One of the strings of choices (NULL-terminated); *index is its position. */
OrtStatus* onnxq_ort_attr_choice(const OrtKernelInfo* info, const onnxq_ort_node* node,
                                 const char* name, const char* const* choices, int* index);

/* A tensor as onnxq reads it: type, dims, element count, data. */
typedef struct onnxq_ort_tensor {
    int type;
    size_t ndim;
    int64_t dims[ONNXQ_ORT_MAX_DIMS];
    size_t count;
    void* data;
} onnxq_ort_tensor;

/* Type, shape and data of value, checked: type == want (ORT_TYPE_UNDEFINED: any), rank <= 8,
 * no negative dimension, count without overflow. `what` names the tensor in messages. */
OrtStatus* onnxq_ort_describe(const onnxq_ort_node* node, const OrtValue* value, const char* what,
                              int want, onnxq_ort_tensor* t);
/* Input `index` of the node, which must be a constant (an initializer): read at kernel creation.
 * Absent optional input: t->data NULL, t->count 0 (when optional != 0). */
OrtStatus* onnxq_ort_constant(const OrtKernelInfo* info, const onnxq_ort_node* node, size_t index,
                              const char* what, int want, int optional, onnxq_ort_tensor* t);
/* An optional constant: absent (t->data NULL) when the node leaves its name empty. The runtime
 * tells an empty name from a non-constant value only when the op runs, so compute must refuse an
 * input that is there then (onnxq_ort_optional_input) but was not read here. */
OrtStatus* onnxq_ort_optional_constant(const OrtKernelInfo* info, const onnxq_ort_node* node,
                                       size_t index, const char* what, int want, onnxq_ort_tensor* t);
/* Optional run-time input `index`: absent (t->data NULL) or described and of type want. */
OrtStatus* onnxq_ort_optional_input(OrtKernelContext* ctx, const onnxq_ort_node* node, size_t index,
                                    const char* what, int want, onnxq_ort_tensor* t);
/* A constant that holds one value (a scalar or a 1-element tensor). */
OrtStatus* onnxq_ort_constant_scalar(const OrtKernelInfo* info, const onnxq_ort_node* node,
                                     size_t index, const char* what, int want, onnxq_ort_tensor* t);
/* How many inputs the node has at run time (a variadic input's values each counted). */
OrtStatus* onnxq_ort_input_count(OrtKernelContext* ctx, const onnxq_ort_node* node, size_t* count);
/* Input `index` at run time. */
OrtStatus* onnxq_ort_input(OrtKernelContext* ctx, const onnxq_ort_node* node, size_t index,
                           const char* what, int want, onnxq_ort_tensor* t);
/* Output `index` of the given shape (allocated by the runtime). */
OrtStatus* onnxq_ort_output(OrtKernelContext* ctx, const onnxq_ort_node* node, size_t index,
                            const int64_t* dims, size_t ndim, int want, onnxq_ort_tensor* t);
/* Input 0 of a matrix product, float32 a [..., k], and its output 0, float32 y [..., n] (allocated):
 * *m = the rows of a (0 for an empty a: nothing to compute). */
OrtStatus* onnxq_ort_matmul_io(OrtKernelContext* ctx, const onnxq_ort_node* node, size_t k, size_t n,
                               onnxq_ort_tensor* a, onnxq_ort_tensor* y, size_t* m);
/* A finite scale > 0 from a float constant's one value. */
OrtStatus* onnxq_ort_scale(const onnxq_ort_node* node, const onnxq_ort_tensor* t, const char* what,
                           float* out);
/* A zero point from a u8 or s8 constant's one value (as int32). */
int32_t onnxq_ort_zero_point(const onnxq_ort_tensor* t);

/* The scales of symmetric int8 weights with n output channels: w_scale holds 1 or n finite
 * values > 0 and w_zero_point 1 or n zeros; *scales gets a malloc'd copy of w_scale's values
 * (the caller frees it; NULL on error). */
OrtStatus* onnxq_ort_weight_scales(const onnxq_ort_node* node, const onnxq_ort_tensor* w_scale,
                                   const onnxq_ort_tensor* w_zero_point, size_t n, float** scales);
/* Packs the int8 weights B[k, n] (element (i, j) at stride_k * i + stride_n * j of w) for
 * onnxq_gemm_u8s8_run into a new 64-byte aligned buffer (*packed, freed by the caller). */
OrtStatus* onnxq_ort_pack_gemm(const onnxq_ort_node* node, const onnxq_ort_tensor* w, size_t k,
                               size_t n, ptrdiff_t stride_k, ptrdiff_t stride_n, void** packed,
                               size_t* packed_size);

/* Tiles of an [m, n] product run with onnxq_gemm_u8s8_run_cols on the intra-op threads: bands of
 * up to ONNXQ_ORT_GEMM_BAND rows times up to ONNXQ_ORT_GEMM_CHUNKS ranges of columns (multiples
 * of 16, at least 128 columns each when n allows). A band of a transformer's 128 tokens is one
 * GEMM, so the weights are widened / loaded once per call, and few rows still spread over the
 * threads. Tile i covers rows [r0, r0 + rows) and columns [col0, col0 + cols). */
enum { ONNXQ_ORT_GEMM_BAND = 256, ONNXQ_ORT_GEMM_CHUNKS = 8, ONNXQ_ORT_GEMM_MIN_BLOCKS = 8 };
typedef struct onnxq_ort_gemm_tiles {
    size_t m, n, chunks, chunk_cols, count;
} onnxq_ort_gemm_tiles;
onnxq_ort_gemm_tiles onnxq_ort_gemm_tiling(size_t m, size_t n);
void onnxq_ort_gemm_tile(const onnxq_ort_gemm_tiles* t, size_t i, size_t* r0, size_t* rows,
                         size_t* col0, size_t* cols);

/* The first failure of the tasks of one parallel run: its status and onnxq_last_error() as the
 * failing thread saw it (the message is thread-local). Zero-initialise before the run. */
typedef struct onnxq_ort_job_error {
    atomic_int status;
    char message[256];
} onnxq_ort_job_error;
/* Records status (!= 0) unless a task failed already. */
void onnxq_ort_job_fail(onnxq_ort_job_error* e, int status);
/* NULL when no task failed, else a status naming the node with the first failure's message. */
OrtStatus* onnxq_ort_job_status(const onnxq_ort_node* node, onnxq_ort_job_error* e);

/* Runs fn(data, i) for i in [0, n) on the session's intra-op threads (inline when n <= 1). */
OrtStatus* onnxq_ort_parallel(OrtKernelContext* ctx, const onnxq_ort_node* node,
                              void (*fn)(void* data, size_t i), size_t n, void* data);

/* The ops, defined one per file (op_*.c). */
extern onnxq_ort_opdef onnxq_ort_op_quantize;
extern onnxq_ort_opdef onnxq_ort_op_dequantize;
extern onnxq_ort_opdef onnxq_ort_op_qlinearconv;
extern onnxq_ort_opdef onnxq_ort_op_qlinearadd;
extern onnxq_ort_opdef onnxq_ort_op_maxpool;
extern onnxq_ort_opdef onnxq_ort_op_qlinearglobalaveragepool;
extern onnxq_ort_opdef onnxq_ort_op_qgemm;
extern onnxq_ort_opdef onnxq_ort_op_qlinearconcat;
extern onnxq_ort_opdef onnxq_ort_op_dynamicmatmul;
extern onnxq_ort_opdef onnxq_ort_op_dynamicmatmulnbits;
extern onnxq_ort_opdef onnxq_ort_op_dynamiclstm;
extern onnxq_ort_opdef onnxq_ort_op_dynamicgru;
extern onnxq_ort_opdef onnxq_ort_op_dynamicrnn;

#endif /* ONNXQ_ORT_KERNEL_H */
