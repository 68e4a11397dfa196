/* Drives a validated convolution: splits the output rows (pixels) into tasks run by the thread
 * pool, builds the depthwise tap pointers (indirection) or the im2col row blocks, and calls the
 * micro-kernels. All scratch is allocated before any output is written. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/internal.h"
#include "conv/conv_internal.h"
#include "onnxq/conv.h"
#include "onnxq/gemm.h"

#define ONNXQ_CONV_ROW_ALIGN 16u        /* rows per block: a multiple of the AMX tile height */
#define ONNXQ_CONV_TASKS_PER_THREAD 4u  /* row ranges per thread, claimed dynamically */
#define ONNXQ_CONV_MIN_TASK_ROWS 64u
#define ONNXQ_CONV_MIN_THREAD_MACS 4e6 /* below this much work per thread, use fewer */
/* Bytes of one im2col block: large enough to amortise the packed weights' traffic, small enough
 * to stay in L2 next to them. */
#define ONNXQ_CONV_BLOCK_BYTES (256u * 1024u)

static void run_gemm(conv_worker* w) {
    const onnxq_conv_job_plan* plan = w->plan;
    const onnxq_conv_params* p = plan->p;
    const onnxq_conv_packed* h = plan->packed;
    const uint8_t* base = plan->packed;
    const size_t groups = p->w.groups, cg = p->w.in_c / groups, og = p->w.out_c / groups;
    const size_t k = p->w.kernel_h * p->w.kernel_w * cg, hw = plan->out_h * plan->out_w;
    const onnxq_im2col_geom geom = {
        .in_h = p->in_h, .in_w = p->in_w, .in_c = p->w.in_c,
        .out_h = plan->out_h, .out_w = plan->out_w,
        .kernel_h = p->w.kernel_h, .kernel_w = p->w.kernel_w,
        .stride_h = p->stride_h, .stride_w = p->stride_w,
        .dilation_h = p->dilation_h, .dilation_w = p->dilation_w,
        .pad_top = p->pad_top, .pad_left = p->pad_left, .group_c = cg,
    };
    onnxq_gemm_u8s8_params gp = {
        .k = k, .n = og, .a_zp = p->x_zp, .bias_len = og, .out_type = ONNXQ_U8, .scale_len = og,
        .out_zp = p->y_zp, .qmin = p->qmin, .qmax = p->qmax, .ldc = p->w.out_c,
    };
    const int32_t* bias = (const int32_t*)(const void*)(base + h->bias_off);
    const float* scale = (const float*)(const void*)(base + h->scale_off);
    for (size_t r = w->r0; r < w->r1;) {
        size_t mb;
        const uint8_t* img = NULL;
        if (plan->direct_1x1) {
            mb = w->r1 - r; /* the input rows are the GEMM's A rows, across images too */
        } else {
            const size_t m0 = r % hw;
            mb = w->block_rows;
            if (mb > w->r1 - r) mb = w->r1 - r;
            if (mb > hw - m0) mb = hw - m0;
            img = plan->x + (r / hw) * p->in_h * p->in_w * p->w.in_c;
        }
        for (size_t g = 0; g < groups; g++) {
            if (plan->direct_1x1) {
                const size_t a0 = r * p->w.in_c + g * cg;
                gp.a = plan->x + a0;
                gp.a_len = plan->x_len - a0;
                gp.lda = p->w.in_c;
            } else {
                onnxq_conv_im2col_rows(&geom, img, g * cg, r % hw, mb, p->x_zp, w->scratch);
                gp.a = w->scratch;
                gp.a_len = mb * k;
                gp.lda = k;
            }
            const size_t c0 = r * p->w.out_c + g * og;
            gp.m = mb;
            gp.bias = bias + g * og;
            gp.scale = scale + g * og;
            gp.c = plan->y + c0;
            gp.c_len = plan->y_len - c0;
            const int st = onnxq_gemm_u8s8_run_cols(base + h->weights_off + g * h->group_stride,
                                                    h->group_size, &gp, groups == 1 ? plan->col0 : 0,
                                                    groups == 1 ? plan->cols : og);
            if (st != ONNXQ_OK) {
                w->status = st;
                snprintf(w->msg, sizeof w->msg, "%s", onnxq_last_error());
                return;
            }
        }
        r += mb;
    }
}

typedef struct conv_job {
    const onnxq_conv_job_plan* plan;
    size_t rows, chunk, block_rows, scratch_bytes;
    uint8_t* scratch;  /* scratch_bytes per participant */
    int* status;       /* per task */
    char (*msg)[256];  /* per task */
} conv_job;

static void conv_task(void* arg, size_t task, size_t participant) {
    const conv_job* job = arg;
    conv_worker w = {
        .plan = job->plan,
        .r0 = task * job->chunk,
        .r1 = (task + 1) * job->chunk < job->rows ? (task + 1) * job->chunk : job->rows,
        .scratch = job->scratch != NULL ? job->scratch + participant * job->scratch_bytes : NULL,
        .block_rows = job->block_rows,
    };
    if (job->plan->dwrow != NULL) {
        onnxq_conv_run_depthwise_rows(&w);
    } else if (job->plan->dw != NULL) {
        onnxq_conv_run_depthwise(&w);
    } else {
        run_gemm(&w);
    }
    job->status[task] = w.status;
    if (w.status != ONNXQ_OK) memcpy(job->msg[task], w.msg, sizeof w.msg);
}

int onnxq_conv_execute(const onnxq_conv_job_plan* plan) {
    const onnxq_conv_params* p = plan->p;
    const size_t rows = p->batch * plan->out_h * plan->out_w;
    size_t threads = p->threads == 0 ? 1 : p->threads;
    if (threads > ONNXQ_CONV_MAX_THREADS) threads = ONNXQ_CONV_MAX_THREADS;
    const size_t cpus = onnxq_conv_cpu_count();
    if (threads > cpus) threads = cpus; /* more threads than CPUs only take turns */
    const size_t row_blocks = (rows + ONNXQ_CONV_ROW_ALIGN - 1) / ONNXQ_CONV_ROW_ALIGN;
    if (threads > row_blocks) threads = row_blocks;
    /* Small layers: waking another thread costs more than it saves. */
    const double macs = (double)rows * (double)plan->cols * (double)(p->w.in_c / p->w.groups) *
                        (double)(p->w.kernel_h * p->w.kernel_w);
    if ((double)threads * ONNXQ_CONV_MIN_THREAD_MACS > macs) {
        threads = macs < ONNXQ_CONV_MIN_THREAD_MACS ? 1 : (size_t)(macs / ONNXQ_CONV_MIN_THREAD_MACS);
    }
    /* A few tasks per thread so that a late thread's share is taken by the others, but no task
     * under ONNXQ_CONV_MIN_TASK_ROWS rows: every GEMM call streams all of the packed weights. */
    size_t per_thread = rows / (ONNXQ_CONV_MIN_TASK_ROWS * threads);
    if (per_thread > ONNXQ_CONV_TASKS_PER_THREAD) per_thread = ONNXQ_CONV_TASKS_PER_THREAD;
    if (per_thread == 0 || threads == 1) per_thread = 1;
    size_t tasks = threads * per_thread;
    const size_t chunk = onnxq_round_up((rows + tasks - 1) / tasks, ONNXQ_CONV_ROW_ALIGN);
    tasks = (rows + chunk - 1) / chunk;

    const size_t taps = p->w.kernel_h * p->w.kernel_w;
    const size_t k = taps * (p->w.in_c / p->w.groups);
    size_t block_rows = 0, scratch;
    if (plan->dwrow != NULL) {
        size_t zrow, bias, ring, row_bytes;
        scratch = onnxq_dwrow_scratch_layout(p, plan->out_w, &zrow, &bias, &ring, &row_bytes);
    } else if (plan->dw != NULL) {
        size_t zrow, bias, bias_eo;
        scratch = onnxq_dw_scratch_layout(taps, p->w.in_c, &zrow, &bias, &bias_eo);
    } else if (plan->direct_1x1) {
        scratch = 0;
    } else {
        /* Equal blocks of about ONNXQ_CONV_BLOCK_BYTES (not full blocks and a tiny last one). */
        const size_t blocks = (chunk * k + ONNXQ_CONV_BLOCK_BYTES - 1) / ONNXQ_CONV_BLOCK_BYTES;
        block_rows = onnxq_round_up((chunk + blocks - 1) / blocks, ONNXQ_CONV_ROW_ALIGN);
        if (block_rows > chunk) block_rows = chunk;
        scratch = block_rows * k;
    }
    scratch = onnxq_round_up(scratch, ONNXQ_CONV_ALIGN);
    const size_t status_bytes = onnxq_round_up(tasks * (sizeof(int) + 256), ONNXQ_CONV_ALIGN);
    uint8_t* mem = aligned_alloc(ONNXQ_CONV_ALIGN, scratch * threads + status_bytes);
    if (mem == NULL) {
        return onnxq_error(ONNXQ_E_NOMEM, "conv: cannot allocate %zu bytes of scratch",
                           scratch * threads + status_bytes);
    }
    conv_job job = {
        .plan = plan, .rows = rows, .chunk = chunk, .block_rows = block_rows,
        .scratch_bytes = scratch, .scratch = scratch != 0 ? mem : NULL,
        .msg = (char(*)[256])(void*)(mem + scratch * threads),
        .status = (int*)(void*)(mem + scratch * threads + tasks * 256),
    };
    onnxq_conv_parallel(tasks, threads, conv_task, &job);
    int st = ONNXQ_OK;
    for (size_t t = 0; t < tasks && st == ONNXQ_OK; t++) {
        if (job.status[t] != ONNXQ_OK) st = onnxq_error(job.status[t], "conv: %s", job.msg[t]);
    }
    free(mem);
    return st;
}
