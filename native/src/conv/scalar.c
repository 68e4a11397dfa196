/* Scalar conv micro-kernels: always built, the numpy reference's twin. */
#include "conv/ukernel.h"
#include "onnxq_kernels.h" /* generated declarations */

void onnxq_dwconv_u8s8_rq_ukernel_c1__scalar(const onnxq_dw_args* a, const uint8_t* const* input,
                                            uint8_t* out) {
    onnxq_dw_channels_scalar(a, input, 0, out);
}
