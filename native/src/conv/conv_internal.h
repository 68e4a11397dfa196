/* Private to native/src/conv: packed-weights layout and micro-kernel signatures. */
#ifndef ONNXQ_CONV_INTERNAL_H
#define ONNXQ_CONV_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "conv/ukernel.h"
#include "onnxq/conv.h"

#define ONNXQ_CONV_MAGIC 0x5643514fu /* "OQCV" */
#define ONNXQ_CONV_VERSION 3u
#define ONNXQ_CONV_ALIGN 64u
#define ONNXQ_CONV_MAX_DWROW_KH 16u /* depthwise by rows: kernel_h at most this */
#define ONNXQ_CONV_MAX_K 65536u      /* the GEMM's K limit */
#define ONNXQ_GEMM_NR_COLS 16        /* onnxq_conv_run_cols: ranges start at a packed GEMM block */

enum onnxq_conv_kind {
    ONNXQ_CONV_KIND_DEPTHWISE = 1, /* groups == in_c == out_c */
    ONNXQ_CONV_KIND_GEMM = 2,      /* im2col rows x packed GEMM weights, per group */
};

/* Header at the start of every packed buffer; offsets are in bytes from the buffer start. */
typedef struct onnxq_conv_packed {
    uint32_t magic;
    uint32_t version;
    uint32_t kind;
    uint32_t reserved;
    uint64_t out_c, in_c, groups, kernel_h, kernel_w;
    uint64_t total_size;
    uint64_t bias_off;     /* int32[out_c] */
    uint64_t scale_off;    /* float[out_c] (a scalar scale is broadcast at packing) */
    uint64_t weights_off;  /* kind-specific weights */
    uint64_t group_stride; /* GEMM: bytes between two groups' packed B; depthwise: int16 per tap */
    uint64_t group_size;   /* GEMM: bytes of one group's packed B (onnxq_gemm_u8s8_packed_size) */
    uint64_t wsum_off;     /* depthwise: int32[channels padded] sum of each channel's weights */
    uint64_t scale_eo_off; /* depthwise: float[channels padded], even/odd split (conv/ukernel.h) */
    uint64_t quad_off;     /* depthwise, kernel_w <= 4: int8 [kernel_h][cpad 16][4], else 0 */
} onnxq_conv_packed;

/* Copies rows [m0, m0 + m) of the im2col matrix of one group into a (row stride k). */
typedef struct onnxq_im2col_geom {
    size_t in_h, in_w, in_c, out_h, out_w;
    size_t kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left;
    size_t group_c; /* channels of one group = bytes per tap */
} onnxq_im2col_geom;

void onnxq_conv_im2col_rows(const onnxq_im2col_geom* g, const uint8_t* x_image, size_t c0,
                            size_t m0, size_t m, uint8_t x_zp, uint8_t* a);

/* A validated convolution, ready for onnxq_conv_execute (conv_run.c). */
typedef struct onnxq_conv_job_plan {
    const onnxq_conv_params* p;
    const void* packed;  /* checked onnxq_conv_packed buffer */
    const uint8_t* x;
    size_t x_len;        /* elements of x and y (checked) */
    uint8_t* y;
    size_t y_len;
    size_t out_h, out_w;
    onnxq_dwconv_u8s8_rq_ukernel_fn* dw; /* depthwise kernel, or NULL for the GEMM kinds */
    onnxq_dwrow_u8s8_rq_ukernel_fn* dwrow;   /* with dwrowpack: depthwise by quad rows */
    onnxq_dwrowpack_u8_ukernel_fn* dwrowpack;
    int direct_1x1;         /* GEMM straight on the input rows */
    size_t col0, cols;      /* output channels computed (all but for onnxq_conv_run_cols) */
} onnxq_conv_job_plan;

/* Index of channel c in the even/odd split arrays ([blocks][2][16]) of conv/ukernel.h. */
static inline size_t onnxq_dw_eo_index(size_t c) {
    const size_t i = c % ONNXQ_DW_BLOCK;
    return c - i + (i & 1u) * (ONNXQ_DW_BLOCK / 2) + i / 2;
}

/* Shared checks of conv.c and pack.c. */
int onnxq_conv_is_depthwise(const onnxq_conv_weights_params* wp);
int onnxq_conv_check_weights(const onnxq_conv_weights_params* wp);
/* Validates a packed buffer completely (see onnxq_conv_packed_shape); *out = its header. */
int onnxq_conv_packed_check(const void* packed, size_t packed_size, onnxq_conv_packed* out);

/* One task's share of a convolution (conv_run.c, dwconv_run.c). */
typedef struct conv_worker {
    const onnxq_conv_job_plan* plan;
    size_t r0, r1;    /* rows of the flattened [batch * out_h * out_w] output */
    uint8_t* scratch; /* im2col block (GEMM) or tap pointers + a row of x_zp (depthwise) */
    size_t block_rows;
    int status;
    char msg[256];
} conv_worker;

size_t onnxq_dw_scratch_layout(size_t taps, size_t channels, size_t* zrow, size_t* bias,
                               size_t* bias_eo);
size_t onnxq_dwrow_scratch_layout(const onnxq_conv_params* p, size_t out_w, size_t* zrow,
                                  size_t* bias, size_t* rows, size_t* row_bytes);
void onnxq_conv_run_depthwise(conv_worker* w);
void onnxq_conv_run_depthwise_rows(conv_worker* w);

/* CPUs this process may run on (sched_getaffinity; at least 1), the cap of conv threads. */
size_t onnxq_conv_cpu_count(void);

/* Runs fn(arg, task, participant) for every task in [0, tasks) on the calling thread
 * (participant 0) and up to participants - 1 persistent worker threads (threadpool.c), which claim
 * tasks dynamically; returns when all are done. */
typedef void onnxq_conv_task_fn(void* arg, size_t task, size_t participant);
void onnxq_conv_parallel(size_t tasks, size_t participants, onnxq_conv_task_fn* fn, void* arg);

/* Runs the plan on p->threads threads; allocates all scratch before writing any output. */
int onnxq_conv_execute(const onnxq_conv_job_plan* plan);

#endif /* ONNXQ_CONV_INTERNAL_H */
