/* u8s8 GEMM, portable C: one row x one 16-column block at a time (the twin of the reference). */
#include "common/quantize_scalar.h"
#include "gemm/ukernel.h"

void onnxq_gemm_u8s8_store_scalar(const onnxq_gemm_u8s8_ctx* ctx, size_t row, size_t col,
                                  size_t cnt, const int32_t* acc) {
    const size_t base = row * ctx->ldc + col;
    switch (ctx->out_type) {
        case ONNXQ_U8:
        case ONNXQ_S8: { /* the value is within the type's range: its low byte is the int8/uint8 */
            uint8_t* c = (uint8_t*)ctx->c + base;
            for (size_t j = 0; j < cnt; ++j)
                c[j] = (uint8_t)onnxq_requant_one(acc[j], ctx->scale[col + j], ctx->lo, ctx->hi,
                                                  ctx->out_zp);
            break;
        }
        case ONNXQ_F32: {
            float* c = (float*)ctx->c + base;
            for (size_t j = 0; j < cnt; ++j) {
                float v = (float)acc[j] * ctx->scale[col + j];
                if (ctx->bias_f != NULL) v = v + ctx->bias_f[col + j];
                c[j] = v;
            }
            break;
        }
        default: {
            int32_t* c = (int32_t*)ctx->c + base;
            for (size_t j = 0; j < cnt; ++j) c[j] = acc[j];
            break;
        }
    }
}

int onnxq_gemm_u8s8_ukernel_1x16c4__scalar(const onnxq_gemm_u8s8_ctx* ctx, const uint8_t* a,
                                           size_t lda, size_t m) {
    const size_t groups = (ctx->k + 3) / 4;
    for (size_t i = 0; i < m; ++i) {
        const uint8_t* ar = a + i * lda;
        for (size_t j = 0; j < ctx->nb; ++j) {
            const int8_t* blk = ctx->w + j * ctx->kq * 64;
            uint32_t acc[16];
            for (size_t c = 0; c < 16; ++c) acc[c] = (uint32_t)ctx->corr[j * 16 + c];
            for (size_t g = 0; g < groups; ++g) {
                const uint32_t a4 = onnxq_gemm_load_a4(ar, ctx->k, g);
                const int8_t* b = blk + g * 64;
                for (size_t c = 0; c < 16; ++c)
                    for (size_t t = 0; t < 4; ++t)
                        acc[c] += (uint32_t)((int32_t)((a4 >> (8 * t)) & 0xffu) *
                                             (int32_t)b[c * 4 + t]);
            }
            int32_t out[16];
            for (size_t c = 0; c < 16; ++c) out[c] = (int32_t)acc[c];
            const size_t cnt = ctx->n - j * 16 < 16 ? ctx->n - j * 16 : 16;
            onnxq_gemm_u8s8_store_scalar(ctx, i, j * 16, cnt, out);
        }
    }
    return ONNXQ_OK;
}
