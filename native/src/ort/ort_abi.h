/* The part of onnxruntime's C ABI that onnxq's custom ops use, declared in-project.
 *
 * onnxruntime's wheel ships no C headers. Its C API is append-only and documented: OrtApiBase
 * (two function pointers) hands out OrtApi, a table of function pointers whose slots never move
 * once released; OrtCustomOp is a struct of callbacks whose `version` field tells the runtime
 * which of the later callbacks exist. Only what onnxq uses is declared: each OrtApi slot by its
 * index (ort_slot), with the function type of that slot. Nothing here links against
 * libonnxruntime; every call goes through the OrtApiBase passed to RegisterCustomOps.
 *
 * ORT_TARGET_API is the API version requested: 18 (onnxruntime 1.18, the oldest onnxq supports;
 * every slot below was in the table by then, and variadic custom-op inputs came with 14).
 * tests/kernels/test_custom_ops.py exercises every slot used through the ops and checks what
 * comes back (a wrong slot crashes, fails or gives other bytes).
 */
#ifndef ONNXQ_ORT_ABI_H
#define ONNXQ_ORT_ABI_H
#include <stddef.h>
#include <stdint.h>

enum { ORT_TARGET_API = 18 };

typedef struct OrtStatus OrtStatus;
typedef struct OrtApi OrtApi; /* a table of function pointers, read by slot */
typedef struct OrtSessionOptions OrtSessionOptions;
typedef struct OrtCustomOpDomain OrtCustomOpDomain;
typedef struct OrtKernelInfo OrtKernelInfo;
typedef struct OrtKernelContext OrtKernelContext;
typedef struct OrtValue OrtValue;
typedef struct OrtTensorTypeAndShapeInfo OrtTensorTypeAndShapeInfo;
typedef struct OrtAllocator OrtAllocator;
typedef struct OrtMemoryInfo OrtMemoryInfo;
typedef struct OrtShapeInferContext OrtShapeInferContext;

typedef struct OrtApiBase {
    const OrtApi* (*GetApi)(uint32_t version); /* NULL when the runtime lacks that version */
    const char* (*GetVersionString)(void);
} OrtApiBase;

/* OrtErrorCode values used. */
enum { ORT_OK = 0, ORT_FAIL = 1, ORT_INVALID_ARGUMENT = 2, ORT_RUNTIME_EXCEPTION = 6 };

/* ONNXTensorElementDataType values used (the same numbers as onnx's TensorProto for these). */
enum {
    ORT_TYPE_UNDEFINED = 0,
    ORT_TYPE_FLOAT = 1,
    ORT_TYPE_UINT8 = 2,
    ORT_TYPE_INT8 = 3,
    ORT_TYPE_INT32 = 6,
    ORT_TYPE_INT64 = 7
};

/* OrtCustomOpInputOutputCharacteristic (VARIADIC: only the last input, API 14+), OrtMemType. */
enum { ORT_IO_REQUIRED = 0, ORT_IO_OPTIONAL = 1, ORT_IO_VARIADIC = 2 };
enum { ORT_MEM_DEFAULT = 0 };

/* The OrtApi slots used, by index. */
typedef enum ort_slot {
    ORT_SLOT_CreateStatus = 0,
    ORT_SLOT_GetErrorCode = 1,
    ORT_SLOT_GetErrorMessage = 2,
    ORT_SLOT_CreateCustomOpDomain = 26,
    ORT_SLOT_CustomOpDomain_Add = 27,
    ORT_SLOT_AddCustomOpDomain = 28,
    ORT_SLOT_GetTensorMutableData = 51,
    ORT_SLOT_GetTensorElementType = 60,
    ORT_SLOT_GetDimensionsCount = 61,
    ORT_SLOT_GetDimensions = 62,
    ORT_SLOT_GetTensorTypeAndShape = 65,
    ORT_SLOT_KernelInfoGetAttribute_int64 = 86,
    ORT_SLOT_KernelInfoGetAttribute_string = 87,
    ORT_SLOT_KernelContext_GetInputCount = 88,
    ORT_SLOT_KernelContext_GetInput = 90,
    ORT_SLOT_KernelContext_GetOutput = 91,
    ORT_SLOT_ReleaseStatus = 93,
    ORT_SLOT_ReleaseTensorTypeAndShapeInfo = 99,
    ORT_SLOT_KernelInfoGetAttributeArray_int64 = 163,
    ORT_SLOT_KernelInfo_GetInputCount = 230,
    ORT_SLOT_KernelInfo_GetNodeName = 244,
    ORT_SLOT_KernelInfoGetConstantInput_tensor = 249,
    ORT_SLOT_KernelContext_ParallelFor = 274
} ort_slot;

/* The function type of each slot used (OrtStatus* NULL is success). */
typedef OrtStatus* ort_CreateStatus_fn(int code, const char* msg);
typedef int ort_GetErrorCode_fn(const OrtStatus* status);
typedef const char* ort_GetErrorMessage_fn(const OrtStatus* status);
typedef OrtStatus* ort_CreateCustomOpDomain_fn(const char* domain, OrtCustomOpDomain** out);
typedef OrtStatus* ort_CustomOpDomain_Add_fn(OrtCustomOpDomain* domain, const void* op);
typedef OrtStatus* ort_AddCustomOpDomain_fn(OrtSessionOptions* options, OrtCustomOpDomain* domain);
typedef OrtStatus* ort_GetTensorMutableData_fn(OrtValue* value, void** out);
typedef OrtStatus* ort_GetTensorElementType_fn(const OrtTensorTypeAndShapeInfo* info, int* out);
typedef OrtStatus* ort_GetDimensionsCount_fn(const OrtTensorTypeAndShapeInfo* info, size_t* out);
typedef OrtStatus* ort_GetDimensions_fn(const OrtTensorTypeAndShapeInfo* info, int64_t* dims, size_t n);
typedef OrtStatus* ort_GetTensorTypeAndShape_fn(const OrtValue* value, OrtTensorTypeAndShapeInfo** out);
typedef OrtStatus* ort_KernelInfoGetAttribute_int64_fn(const OrtKernelInfo* info, const char* name,
                                                       int64_t* out);
/* out NULL: *size = bytes needed including the NUL; too small a buffer fails and sets *size. */
typedef OrtStatus* ort_KernelInfoGetAttribute_string_fn(const OrtKernelInfo* info, const char* name,
                                                        char* out, size_t* size);
/* the node's inputs at run time, a variadic input's values each counted */
typedef OrtStatus* ort_KernelContext_GetInputCount_fn(const OrtKernelContext* ctx, size_t* out);
/* an absent optional input: success with *out NULL */
typedef OrtStatus* ort_KernelContext_GetInput_fn(const OrtKernelContext* ctx, size_t index,
                                                 const OrtValue** out);
typedef OrtStatus* ort_KernelContext_GetOutput_fn(OrtKernelContext* ctx, size_t index,
                                                  const int64_t* dims, size_t n, OrtValue** out);
typedef void ort_ReleaseStatus_fn(OrtStatus* status);
typedef void ort_ReleaseTensorTypeAndShapeInfo_fn(OrtTensorTypeAndShapeInfo* info);
/* out NULL: *size = elements; too small a buffer fails and sets *size. */
typedef OrtStatus* ort_KernelInfoGetAttributeArray_int64_fn(const OrtKernelInfo* info,
                                                            const char* name, int64_t* out,
                                                            size_t* size);
typedef OrtStatus* ort_KernelInfo_GetInputCount_fn(const OrtKernelInfo* info, size_t* out);
typedef OrtStatus* ort_KernelInfo_GetNodeName_fn(const OrtKernelInfo* info, char* out, size_t* size);
/* *is_constant 1 for an initializer (then *out is its value, owned by the session) */
typedef OrtStatus* ort_KernelInfoGetConstantInput_tensor_fn(const OrtKernelInfo* info, size_t index,
                                                            int* is_constant, const OrtValue** out);
/* fn(usr_data, i) for i in [0, total) on the session's intra-op threads; num_batch 0: no limit */
typedef OrtStatus* ort_KernelContext_ParallelFor_fn(const OrtKernelContext* ctx,
                                                    void (*fn)(void* usr_data, size_t index),
                                                    size_t total, size_t num_batch, void* usr_data);

/* The slots, typed: filled once from the table by onnxq_ort_bind. */
typedef struct onnxq_ort {
    ort_CreateStatus_fn* CreateStatus;
    ort_GetErrorCode_fn* GetErrorCode;
    ort_GetErrorMessage_fn* GetErrorMessage;
    ort_CreateCustomOpDomain_fn* CreateCustomOpDomain;
    ort_CustomOpDomain_Add_fn* CustomOpDomain_Add;
    ort_AddCustomOpDomain_fn* AddCustomOpDomain;
    ort_GetTensorMutableData_fn* GetTensorMutableData;
    ort_GetTensorElementType_fn* GetTensorElementType;
    ort_GetDimensionsCount_fn* GetDimensionsCount;
    ort_GetDimensions_fn* GetDimensions;
    ort_GetTensorTypeAndShape_fn* GetTensorTypeAndShape;
    ort_KernelInfoGetAttribute_int64_fn* KernelInfoGetAttribute_int64;
    ort_KernelInfoGetAttribute_string_fn* KernelInfoGetAttribute_string;
    ort_KernelContext_GetInputCount_fn* KernelContext_GetInputCount;
    ort_KernelContext_GetInput_fn* KernelContext_GetInput;
    ort_KernelContext_GetOutput_fn* KernelContext_GetOutput;
    ort_ReleaseStatus_fn* ReleaseStatus;
    ort_ReleaseTensorTypeAndShapeInfo_fn* ReleaseTensorTypeAndShapeInfo;
    ort_KernelInfoGetAttributeArray_int64_fn* KernelInfoGetAttributeArray_int64;
    ort_KernelInfo_GetInputCount_fn* KernelInfo_GetInputCount;
    ort_KernelInfo_GetNodeName_fn* KernelInfo_GetNodeName;
    ort_KernelInfoGetConstantInput_tensor_fn* KernelInfoGetConstantInput_tensor;
    ort_KernelContext_ParallelFor_fn* KernelContext_ParallelFor;
} onnxq_ort;

/* struct OrtCustomOp (64-bit layout: uint32_t version, then 25 callbacks). The runtime reads
 * the callbacks added up to `version`: GetInputMemoryType from 13 (called for every input), the
 * variadic arity and homogeneity callbacks from 14 (asked only of an input or output whose
 * characteristic is VARIADIC, which only the last may be), CreateKernelV2/KernelComputeV2 from 16
 * (V1 ones are then not called), Get{Start,End}Version and InferOutputShapeFn from 17, the
 * in-place/alias maps from 18 (NULL: none). */
typedef struct OrtCustomOp {
    uint32_t version;
    void* (*CreateKernel)(const struct OrtCustomOp* op, const OrtApi* api, const OrtKernelInfo* info);
    const char* (*GetName)(const struct OrtCustomOp* op);
    const char* (*GetExecutionProviderType)(const struct OrtCustomOp* op); /* NULL: CPU */
    int (*GetInputType)(const struct OrtCustomOp* op, size_t index);
    size_t (*GetInputTypeCount)(const struct OrtCustomOp* op);
    int (*GetOutputType)(const struct OrtCustomOp* op, size_t index);
    size_t (*GetOutputTypeCount)(const struct OrtCustomOp* op);
    void (*KernelCompute)(void* kernel, OrtKernelContext* ctx);
    void (*KernelDestroy)(void* kernel);
    int (*GetInputCharacteristic)(const struct OrtCustomOp* op, size_t index);
    int (*GetOutputCharacteristic)(const struct OrtCustomOp* op, size_t index);
    int (*GetInputMemoryType)(const struct OrtCustomOp* op, size_t index);
    int (*GetVariadicInputMinArity)(const struct OrtCustomOp* op);
    int (*GetVariadicInputHomogeneity)(const struct OrtCustomOp* op);
    int (*GetVariadicOutputMinArity)(const struct OrtCustomOp* op);
    int (*GetVariadicOutputHomogeneity)(const struct OrtCustomOp* op);
    OrtStatus* (*CreateKernelV2)(const struct OrtCustomOp* op, const OrtApi* api,
                                 const OrtKernelInfo* info, void** kernel);
    OrtStatus* (*KernelComputeV2)(void* kernel, OrtKernelContext* ctx);
    OrtStatus* (*InferOutputShapeFn)(const struct OrtCustomOp* op, OrtShapeInferContext* ctx);
    int (*GetStartVersion)(const struct OrtCustomOp* op);
    int (*GetEndVersion)(const struct OrtCustomOp* op);
    size_t (*GetMayInplace)(int** input_index, int** output_index);
    void (*ReleaseMayInplace)(int* input_index, int* output_index);
    size_t (*GetAliasMap)(int** input_index, int** output_index);
    void (*ReleaseAliasMap)(int* input_index, int* output_index);
} OrtCustomOp;

_Static_assert(sizeof(void*) != 8 || sizeof(OrtCustomOp) == 208, "OrtCustomOp layout");
_Static_assert(sizeof(OrtApiBase) == 2 * sizeof(void*), "OrtApiBase layout");

#endif /* ONNXQ_ORT_ABI_H */
