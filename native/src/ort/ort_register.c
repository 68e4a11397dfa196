/* The OrtCustomOp callbacks every onnxq op shares, and RegisterCustomOps: the entry point
 * onnxruntime calls when SessionOptions.register_custom_ops_library names this shared object.
 * See ort_kernel.h. */
#include "ort/ort_kernel.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The domain of onnxq's ops and its one opset version. */
static const char ONNXQ_ORT_DOMAIN[] = "ai.onnxq";
enum { ONNXQ_ORT_OPSET = 1 };

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
