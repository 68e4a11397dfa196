"""onnxq's native int8 kernels (C, bound with cffi) and their numpy references.

ISA control: :func:`available_isas`, :func:`active_isa`, :func:`set_isa`, :func:`use_isa`
(environment variable ``ONNXQ_ISA`` at load time); :func:`kernel_table` lists every micro-kernel.
Every wrapper raises :class:`onnxq.errors.KernelError` with the C message on bad input.
"""

from onnxq.kernels.gemm import PackedGemmWeights, gemm_u8s8, pack_gemm_weights
from onnxq.kernels.isa import (
    ISAS,
    KernelInfo,
    active_isa,
    available_isas,
    kernel_table,
    selected_kernel,
    set_isa,
    use_isa,
)
from onnxq.kernels.quant import dequantize, quantize

__all__ = [
    "ISAS",
    "KernelInfo",
    "PackedGemmWeights",
    "active_isa",
    "available_isas",
    "dequantize",
    "gemm_u8s8",
    "kernel_table",
    "pack_gemm_weights",
    "quantize",
    "selected_kernel",
    "set_isa",
    "use_isa",
]
