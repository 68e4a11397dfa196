"""Pure numpy references of every native kernel: bit-exact twins, used as test oracles."""

from onnxq.kernels.reference.gemm import gemm_accumulate, gemm_u8s8
from onnxq.kernels.reference.quant import dequantize, quantize
from onnxq.kernels.reference.requant import clamp_round, requantize, wrap_int32

__all__ = [
    "clamp_round",
    "dequantize",
    "gemm_accumulate",
    "gemm_u8s8",
    "quantize",
    "requantize",
    "wrap_int32",
]
