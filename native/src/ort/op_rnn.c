/* ai.onnxq DynamicLSTM, DynamicGRU, DynamicRNN: the ONNX recurrent ops on the rnn kernels (rnn.h),
 * both matmuls of every step on activations quantized to uint8 at run time, int8 weights.
 *
 *   Dynamic{LSTM,GRU,RNN}(X: float32, W: int8 [D, G*H, I], W_scale: float32 [1 or D*G*H],
 *       W_zero_point: int8 [1 or D*G*H] (all 0), R: int8 [D, G*H, H], R_scale, R_zero_point,
 *       B: float32 [D, 2*G*H]?, sequence_lens: int32 [batch]?, initial_h: float32?,
 *       initial_c: float32? (LSTM only)) -> Y, Y_h (, Y_c)
 *
 * G = 4 (LSTM, gates i o f c), 3 (GRU, z r h), 1 (RNN); D = 2 when direction is "bidirectional".
 * Attributes (all required): direction ("forward", "reverse", "bidirectional"), hidden_size,
 * layout (0: X [T, batch, I], Y [T, D, batch, H], states [D, batch, H]; 1: X [batch, T, I],
 * Y [batch, T, D, H], states [batch, D, H]) and, for GRU, linear_before_reset. The activations
 * are ONNX's defaults (sigmoid, tanh; RNN tanh), no clip, no peepholes: the lowering keeps any
 * other node float.
 *
 * The weights, scales and biases are constants, packed once when the session is created. A run is
 * split into tasks, each one direction of a block of batch rows: without sequence_lens one task
 * per direction over the whole batch (each step's X_t and H_t quantized per tensor, as the
 * kernels do); with sequence_lens one task per direction and batch row, over that row's length
 * (1..T; Y is 0 past it, Y_h / Y_c the state at its last step). A reverse task runs its steps
 * from the last valid one down. Tasks run on the session's intra-op threads and each computes
 * alone, so the bytes do not depend on the thread count; they are those of
 * onnxq.kernels.reference.rnn.dynamic_rnn. NaN or infinity in X or a state is an error naming
 * the node.
 */
#include <stdlib.h>
#include <string.h>

#include "common/internal.h"
#include "onnxq/onnxq.h"
#include "ort/ort_kernel.h"

enum { KIND_LSTM, KIND_GRU, KIND_RNN };
enum { IN_X, IN_W, IN_WS, IN_WZ, IN_R, IN_RS, IN_RZ, IN_B, IN_SEQ, IN_H0, IN_C0 };

typedef struct rnn_dir {
    void* w; /* packed W [G*H, I] */
    size_t w_size;
    void* r; /* packed R [G*H, H] (GRU: its z and r rows) */
    size_t r_size;
    void* rh; /* GRU: packed R rows of h [H, H] */
    size_t rh_size;
    float* w_scale; /* [G*H] */
    float* r_scale; /* [G*H] */
    float* bias;    /* Wb then Rb, [2*G*H], or NULL */
} rnn_dir;

typedef struct rnn_kernel {
    onnxq_ort_node node;
    int kind;
    size_t gates, hidden, input, dirs;
    int reverse_only; /* direction "reverse" */
    int layout;
    int linear_before_reset;
    rnn_dir dir[2];
} rnn_kernel;

static void destroy(void* kernel) {
    rnn_kernel* k = kernel;
    if (k == NULL) return;
    for (size_t d = 0; d < 2; d++) {
        free(k->dir[d].w);
        free(k->dir[d].r);
        free(k->dir[d].rh);
        free(k->dir[d].w_scale);
        free(k->dir[d].r_scale);
        free(k->dir[d].bias);
    }
    free(k);
}

static OrtStatus* fail_free(rnn_kernel* k, OrtStatus* s) {
    destroy(k);
    return s;
}

/* rows [row0, row0 + n) of direction d of the weight t ([D, G*H, cols]) packed as B[cols, n]. */
static OrtStatus* pack_rows(const onnxq_ort_node* nd, const onnxq_ort_tensor* t, size_t d, size_t rows,
                            size_t row0, size_t n, size_t cols, void** packed, size_t* size) {
    onnxq_ort_tensor part = *t;
    part.data = (int8_t*)t->data + (d * rows + row0) * cols;
    part.count = n * cols;
    return onnxq_ort_pack_gemm(nd, &part, cols, n, 1, (ptrdiff_t)cols, packed, size);
}

/* The G*H scales of direction d from the 1 or D*G*H checked values. */
static float* dir_scales(const float* all, size_t count, size_t d, size_t rows) {
    float* s = malloc(rows * sizeof *s);
    if (s == NULL) return NULL;
    for (size_t j = 0; j < rows; j++) s[j] = count == 1 ? all[0] : all[d * rows + j];
    return s;
}

static OrtStatus* weight(const OrtKernelInfo* info, const onnxq_ort_node* nd, size_t index,
                         const char* what, size_t dirs, size_t rows, size_t cols,
                         onnxq_ort_tensor* t) {
    OrtStatus* s = onnxq_ort_constant(info, nd, index, what, ORT_TYPE_INT8, 0, t);
    if (s != NULL) return s;
    if (t->ndim != 3 || (size_t)t->dims[0] != dirs || (size_t)t->dims[1] != rows ||
        (cols != 0 && (size_t)t->dims[2] != cols) || t->dims[2] == 0)
        return onnxq_ort_fail(nd, "%s must be int8 [%zu, %zu, %s], as direction and hidden_size say",
                              what, dirs, rows, cols != 0 ? "hidden_size" : "input_size");
    return NULL;
}

static OrtStatus* create_kind(const OrtKernelInfo* info, onnxq_ort_node node, void** kernel, int kind) {
    rnn_kernel* k = calloc(1, sizeof *k);
    if (k == NULL) return onnxq_ort_fail_code(ORT_FAIL, &node, "out of memory");
    k->node = node;
    k->kind = kind;
    k->gates = kind == KIND_LSTM ? 4 : kind == KIND_GRU ? 3 : 1;
    const onnxq_ort_node* nd = &k->node;
    static const char* const directions[] = {"forward", "reverse", "bidirectional", NULL};
    int direction = 0;
    int64_t hidden = 0, layout = 0, lbr = 0;
    OrtStatus* s;
    if ((s = onnxq_ort_attr_choice(info, nd, "direction", directions, &direction)) != NULL ||
        (s = onnxq_ort_attr_int(info, nd, "hidden_size", 1, 1 << 24, &hidden)) != NULL ||
        (s = onnxq_ort_attr_int(info, nd, "layout", 0, 1, &layout)) != NULL ||
        (kind == KIND_GRU &&
         (s = onnxq_ort_attr_int(info, nd, "linear_before_reset", 0, 1, &lbr)) != NULL))
        return fail_free(k, s);
    k->hidden = (size_t)hidden;
    k->layout = (int)layout;
    k->linear_before_reset = (int)lbr;
    k->dirs = direction == 2 ? 2 : 1;
    k->reverse_only = direction == 1;
    const size_t H = k->hidden, rows = k->gates * H;
    onnxq_ort_tensor w, ws, wz, r, rs, rz, b;
    if ((s = weight(info, nd, IN_W, "W", k->dirs, rows, 0, &w)) != NULL ||
        (s = onnxq_ort_constant(info, nd, IN_WS, "W_scale", ORT_TYPE_FLOAT, 0, &ws)) != NULL ||
        (s = onnxq_ort_constant(info, nd, IN_WZ, "W_zero_point", ORT_TYPE_INT8, 0, &wz)) != NULL ||
        (s = weight(info, nd, IN_R, "R", k->dirs, rows, H, &r)) != NULL ||
        (s = onnxq_ort_constant(info, nd, IN_RS, "R_scale", ORT_TYPE_FLOAT, 0, &rs)) != NULL ||
        (s = onnxq_ort_constant(info, nd, IN_RZ, "R_zero_point", ORT_TYPE_INT8, 0, &rz)) != NULL ||
        (s = onnxq_ort_optional_constant(info, nd, IN_B, "B", ORT_TYPE_FLOAT, &b)) != NULL)
        return fail_free(k, s);
    k->input = (size_t)w.dims[2];
    if (b.data != NULL && (b.ndim != 2 || (size_t)b.dims[0] != k->dirs || (size_t)b.dims[1] != 2 * rows))
        return fail_free(k, onnxq_ort_fail(nd, "B must be float32 [%zu, %zu]", k->dirs, 2 * rows));
    float *wsc = NULL, *rsc = NULL;
    if ((s = onnxq_ort_weight_scales(nd, &ws, &wz, k->dirs * rows, &wsc)) != NULL ||
        (s = onnxq_ort_weight_scales(nd, &rs, &rz, k->dirs * rows, &rsc)) != NULL) {
        free(wsc);
        return fail_free(k, s);
    }
    for (size_t d = 0; d < k->dirs && s == NULL; d++) {
        rnn_dir* q = &k->dir[d];
        q->w_scale = dir_scales(wsc, ws.count, d, rows);
        q->r_scale = dir_scales(rsc, rs.count, d, rows);
        if (b.data != NULL && (q->bias = malloc(2 * rows * sizeof *q->bias)) != NULL)
            memcpy(q->bias, (const float*)b.data + d * 2 * rows, 2 * rows * sizeof *q->bias);
        if (q->w_scale == NULL || q->r_scale == NULL || (b.data != NULL && q->bias == NULL)) {
            s = onnxq_ort_fail_code(ORT_FAIL, nd, "out of memory");
            break;
        }
        const size_t r_rows = kind == KIND_GRU ? 2 * H : rows;
        if ((s = pack_rows(nd, &w, d, rows, 0, rows, k->input, &q->w, &q->w_size)) != NULL ||
            (s = pack_rows(nd, &r, d, rows, 0, r_rows, H, &q->r, &q->r_size)) != NULL)
            break;
        if (kind == KIND_GRU) s = pack_rows(nd, &r, d, rows, 2 * H, H, H, &q->rh, &q->rh_size);
    }
    free(wsc);
    free(rsc);
    if (s != NULL) return fail_free(k, s);
    *kernel = k;
    return NULL;
}

static OrtStatus* create_lstm(const OrtKernelInfo* info, onnxq_ort_node node, void** kernel) {
    return create_kind(info, node, kernel, KIND_LSTM);
}
static OrtStatus* create_gru(const OrtKernelInfo* info, onnxq_ort_node node, void** kernel) {
    return create_kind(info, node, kernel, KIND_GRU);
}
static OrtStatus* create_rnn(const OrtKernelInfo* info, onnxq_ort_node node, void** kernel) {
    return create_kind(info, node, kernel, KIND_RNN);
}

typedef struct rnn_job {
    const rnn_kernel* k;
    size_t T, batch;
    const float* x;
    const int32_t* seq; /* NULL: one task per direction over the whole batch */
    const float *h0, *c0;
    float *y, *yh, *yc;
    onnxq_ort_job_error error;
} rnn_job;

/* Offset of (step t, batch row b) in X (width I) or of (t, direction d, b) in Y (width H). */
static size_t x_at(const rnn_job* j, size_t t, size_t b) {
    return (j->k->layout ? b * j->T + t : t * j->batch + b) * j->k->input;
}
static size_t y_at(const rnn_job* j, size_t t, size_t d, size_t b) {
    const size_t D = j->k->dirs;
    return (j->k->layout ? (b * j->T + t) * D + d : (t * D + d) * j->batch + b) * j->k->hidden;
}
/* Offset of (direction d, batch row b) in initial_h / Y_h and the like. */
static size_t state_at(const rnn_job* j, size_t d, size_t b) {
    return (j->k->layout ? b * j->k->dirs + d : d * j->batch + b) * j->k->hidden;
}

static int run_kernel(const rnn_kernel* k, const rnn_dir* q, size_t nb, size_t len, const float* x,
                      const float* h0, const float* c0, float* y, float* h, float* c) {
    const size_t H = k->hidden, rows = k->gates * H, xn = len * nb * k->input, sn = nb * H;
    const float* wb = q->bias;
    const float* rb = q->bias != NULL ? q->bias + rows : NULL;
    const size_t bn = q->bias != NULL ? rows : 0;
    if (k->kind == KIND_LSTM) {
        onnxq_lstm_params p = {nb, k->input, H, ONNXQ_DQ_PER_TENSOR, q->w, q->w_size, q->w_scale, rows,
                               q->r, q->r_size, q->r_scale, rows, wb, bn, rb, bn};
        return onnxq_lstm(&p, len, x, xn, h0, sn, c0, sn, y, len * sn, h, sn, c, sn);
    }
    if (k->kind == KIND_GRU) {
        onnxq_gru_params p = {nb, k->input, H, ONNXQ_DQ_PER_TENSOR, k->linear_before_reset, q->w,
                              q->w_size, q->w_scale, rows, q->r, q->r_size, q->rh, q->rh_size,
                              q->r_scale, rows, wb, bn, rb, bn};
        return onnxq_gru(&p, len, x, xn, h0, sn, y, len * sn, h, sn);
    }
    onnxq_rnn_params p = {nb, k->input, H, ONNXQ_DQ_PER_TENSOR, q->w, q->w_size, q->w_scale, rows,
                          q->r, q->r_size, q->r_scale, rows, wb, bn, rb, bn};
    return onnxq_rnn(&p, len, x, xn, h0, sn, y, len * sn, h, sn);
}

/* Task i: direction i % D, batch rows [b0, b0 + nb) with their length. Gathers X (reversed for a
 * backward direction) and the initial states into contiguous buffers, runs the kernel, scatters. */
static void run_task(void* data, size_t i) {
    rnn_job* j = data;
    const rnn_kernel* k = j->k;
    const size_t D = k->dirs, H = k->hidden, I = k->input, d = i % D;
    const size_t b0 = j->seq != NULL ? i / D : 0, nb = j->seq != NULL ? 1 : j->batch;
    const size_t len = j->seq != NULL ? (size_t)j->seq[b0] : j->T;
    const int backward = k->reverse_only || d == 1;
    const size_t sn = nb * H;
    float* buf = malloc((len * nb * (I + H) + 4 * sn) * sizeof *buf);
    if (buf == NULL) {
        onnxq_ort_job_fail(&j->error, onnxq_error(ONNXQ_E_NOMEM, "out of memory"));
        return;
    }
    float *x = buf, *y = x + len * nb * I, *h0 = y + len * sn, *c0 = h0 + sn, *h = c0 + sn, *c = h + sn;
    for (size_t t = 0; t < len; t++) {
        const size_t src = backward ? len - 1 - t : t;
        for (size_t b = 0; b < nb; b++)
            memcpy(x + (t * nb + b) * I, j->x + x_at(j, src, b0 + b), I * sizeof *x);
    }
    for (size_t b = 0; b < nb; b++) {
        if (j->h0 != NULL) memcpy(h0 + b * H, j->h0 + state_at(j, d, b0 + b), H * sizeof *h0);
        if (j->c0 != NULL) memcpy(c0 + b * H, j->c0 + state_at(j, d, b0 + b), H * sizeof *c0);
    }
    int st = run_kernel(k, &k->dir[d], nb, len, x, j->h0 != NULL ? h0 : NULL,
                        j->c0 != NULL ? c0 : NULL, y, h, c);
    if (st != ONNXQ_OK) {
        onnxq_ort_job_fail(&j->error, st);
        free(buf);
        return;
    }
    for (size_t t = 0; t < len; t++) {
        const size_t dst = backward ? len - 1 - t : t;
        for (size_t b = 0; b < nb; b++)
            memcpy(j->y + y_at(j, dst, d, b0 + b), y + (t * nb + b) * H, H * sizeof *y);
    }
    for (size_t b = 0; b < nb; b++) {
        memcpy(j->yh + state_at(j, d, b0 + b), h + b * H, H * sizeof *h);
        if (j->yc != NULL) memcpy(j->yc + state_at(j, d, b0 + b), c + b * H, H * sizeof *c);
    }
    free(buf);
}

static OrtStatus* check_state(const rnn_job* j, const onnxq_ort_node* nd, const onnxq_ort_tensor* t,
                              const char* what) {
    if (t->data == NULL) return NULL;
    const size_t D = j->k->dirs;
    const int64_t want[3] = {(int64_t)(j->k->layout ? j->batch : D), (int64_t)(j->k->layout ? D : j->batch),
                             (int64_t)j->k->hidden};
    if (t->ndim != 3 || memcmp(t->dims, want, sizeof want) != 0)
        return onnxq_ort_fail(nd, "%s must be float32 [%lld, %lld, %lld]", what, (long long)want[0],
                              (long long)want[1], (long long)want[2]);
    return NULL;
}

static OrtStatus* compute(void* kernel, OrtKernelContext* ctx) {
    const rnn_kernel* k = kernel;
    const onnxq_ort_node* nd = &k->node;
    onnxq_ort_tensor x, seq, h0, c0, y, yh, yc;
    OrtStatus* s = onnxq_ort_input(ctx, nd, IN_X, "X", ORT_TYPE_FLOAT, &x);
    if (s != NULL) return s;
    if (x.ndim != 3 || (size_t)x.dims[2] != k->input)
        return onnxq_ort_fail(nd, "X must be float32 [%s, %zu] (the weights' input size)",
                              k->layout ? "batch, seq_length" : "seq_length, batch", k->input);
    rnn_job job;
    memset(&job, 0, sizeof job);
    job.k = k;
    job.T = (size_t)x.dims[k->layout ? 1 : 0];
    job.batch = (size_t)x.dims[k->layout ? 0 : 1];
    if (job.T == 0 || job.batch == 0) return onnxq_ort_fail(nd, "X is empty (seq_length or batch 0)");
    if ((s = onnxq_ort_optional_input(ctx, nd, IN_SEQ, "sequence_lens", ORT_TYPE_INT32, &seq)) != NULL ||
        (s = onnxq_ort_optional_input(ctx, nd, IN_H0, "initial_h", ORT_TYPE_FLOAT, &h0)) != NULL ||
        (k->kind == KIND_LSTM &&
         (s = onnxq_ort_optional_input(ctx, nd, IN_C0, "initial_c", ORT_TYPE_FLOAT, &c0)) != NULL))
        return s;
    if (k->kind != KIND_LSTM) c0.data = NULL;
    onnxq_ort_tensor b;
    if ((s = onnxq_ort_optional_input(ctx, nd, IN_B, "B", ORT_TYPE_FLOAT, &b)) != NULL) return s;
    if (b.data != NULL && k->dir[0].bias == NULL)
        return onnxq_ort_fail(nd, "B must be a constant (an initializer), read once when the session "
                              "is created");
    if ((s = check_state(&job, nd, &h0, "initial_h")) != NULL ||
        (s = check_state(&job, nd, &c0, "initial_c")) != NULL)
        return s;
    if (seq.data != NULL) {
        if (seq.ndim != 1 || seq.count != job.batch)
            return onnxq_ort_fail(nd, "sequence_lens must be int32 [%zu] (the batch)", job.batch);
        for (size_t b = 0; b < job.batch; b++) {
            const int32_t n = ((const int32_t*)seq.data)[b];
            if (n < 1 || (size_t)n > job.T)
                return onnxq_ort_fail(nd, "sequence_lens[%zu] is %d, expected 1 to %zu", b, (int)n, job.T);
        }
    }
    const size_t D = k->dirs, H = k->hidden;
    const int64_t ydims[4] = {(int64_t)(k->layout ? job.batch : job.T), (int64_t)(k->layout ? job.T : D),
                              (int64_t)(k->layout ? D : job.batch), (int64_t)H};
    const int64_t sdims[3] = {(int64_t)(k->layout ? job.batch : D), (int64_t)(k->layout ? D : job.batch),
                              (int64_t)H};
    if ((s = onnxq_ort_output(ctx, nd, 0, ydims, 4, ORT_TYPE_FLOAT, &y)) != NULL ||
        (s = onnxq_ort_output(ctx, nd, 1, sdims, 3, ORT_TYPE_FLOAT, &yh)) != NULL ||
        (k->kind == KIND_LSTM && (s = onnxq_ort_output(ctx, nd, 2, sdims, 3, ORT_TYPE_FLOAT, &yc)) != NULL))
        return s;
    const size_t sn = D * job.batch * H;
    if (y.count != job.T * sn || yh.count != sn || (k->kind == KIND_LSTM && yc.count != sn))
        return onnxq_ort_fail(nd, "the runtime gave outputs of other sizes than asked");
    if (seq.data != NULL) memset(y.data, 0, y.count * sizeof(float));
    job.x = x.data;
    job.seq = seq.data;
    job.h0 = h0.data;
    job.c0 = c0.data;
    job.y = y.data;
    job.yh = yh.data;
    job.yc = k->kind == KIND_LSTM ? yc.data : NULL;
    s = onnxq_ort_parallel(ctx, nd, run_task, D * (seq.data != NULL ? job.batch : 1), &job);
    return s != NULL ? s : onnxq_ort_job_status(nd, &job.error);
}

#define RNN_INPUT_TYPES                                                                           \
    ORT_TYPE_FLOAT, ORT_TYPE_INT8, ORT_TYPE_FLOAT, ORT_TYPE_INT8, ORT_TYPE_INT8, ORT_TYPE_FLOAT, \
        ORT_TYPE_INT8, ORT_TYPE_FLOAT, ORT_TYPE_INT32, ORT_TYPE_FLOAT, ORT_TYPE_FLOAT

onnxq_ort_opdef onnxq_ort_op_dynamiclstm = {
    .name = "DynamicLSTM",
    .n_inputs = 11,
    .n_required = 7,
    .input_types = {RNN_INPUT_TYPES},
    .n_outputs = 3,
    .output_types = {ORT_TYPE_FLOAT, ORT_TYPE_FLOAT, ORT_TYPE_FLOAT},
    .create = create_lstm,
    .compute = compute,
    .destroy = destroy,
};

onnxq_ort_opdef onnxq_ort_op_dynamicgru = {
    .name = "DynamicGRU",
    .n_inputs = 10,
    .n_required = 7,
    .input_types = {RNN_INPUT_TYPES},
    .n_outputs = 2,
    .output_types = {ORT_TYPE_FLOAT, ORT_TYPE_FLOAT},
    .create = create_gru,
    .compute = compute,
    .destroy = destroy,
};

onnxq_ort_opdef onnxq_ort_op_dynamicrnn = {
    .name = "DynamicRNN",
    .n_inputs = 10,
    .n_required = 7,
    .input_types = {RNN_INPUT_TYPES},
    .n_outputs = 2,
    .output_types = {ORT_TYPE_FLOAT, ORT_TYPE_FLOAT},
    .create = create_rnn,
    .compute = compute,
    .destroy = destroy,
};
