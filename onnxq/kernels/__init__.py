"""onnxq's native int8 kernels (C, bound with cffi) and their numpy references.

ISA control: :func:`available_isas`, :func:`active_isa`, :func:`set_isa`, :func:`use_isa`
(environment variable ``ONNXQ_ISA`` at load time); :func:`kernel_table` lists every micro-kernel.
Every wrapper raises :class:`onnxq.errors.KernelError` with a one-line message naming the argument
on bad input (checked at the binding boundary, ``onnxq/kernels/_ffi.py``, and again in C); no
input makes the process crash. Multi-threaded convs use a persistent pool of at most
``min(threads, CPUs) - 1`` workers (``threads`` <= :data:`MAX_THREADS`): :func:`threads_alive`,
:func:`release_threads`.

Wrappers by family: quantize / dequantize; gemm (:func:`pack_gemm_weights`, :func:`gemm_u8s8`);
conv (:func:`pack_conv_weights`, :func:`conv_u8s8_nhwc`, :class:`PreparedConv`); eltwise
(:func:`qadd`); pool (:func:`maxpool`, :func:`avgpool`, :func:`global_avgpool`); concat
(:func:`qconcat`); dynamic quantization (:func:`pack_dynamic_weights`, :func:`dynamic_quantize`,
:func:`dynamic_matmul`); block-wise 4-bit weights (:func:`pack_blockwise_weights`,
:func:`blockwise_matmul`); recurrent (:func:`pack_lstm_weights`, :func:`lstm`,
:func:`pack_gru_weights`, :func:`gru`).
"""

from onnxq.kernels.blockwise import PackedBlockwiseWeights, blockwise_matmul, pack_blockwise_weights
from onnxq.kernels.concat import qconcat
from onnxq.kernels.conv import (
    MAX_THREADS,
    PackedConvWeights,
    PreparedConv,
    conv_u8s8_nhwc,
    nchw_to_nhwc,
    nhwc_to_nchw,
    pack_conv_weights,
    release_threads,
    threads_alive,
)
from onnxq.kernels.dynamic import (
    PackedDynamicWeights,
    dynamic_matmul,
    dynamic_quantize,
    pack_dynamic_weights,
)
from onnxq.kernels.eltwise import qadd
from onnxq.kernels.gemm import PackedGemmWeights, gemm_kernel_name, gemm_u8s8, pack_gemm_weights
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
from onnxq.kernels.pool import avgpool, global_avgpool, maxpool
from onnxq.kernels.quant import dequantize, quantize
from onnxq.kernels.rnn import GruWeights, LstmWeights, gru, lstm, pack_gru_weights, pack_lstm_weights

__all__ = [
    "ISAS",
    "MAX_THREADS",
    "GruWeights",
    "KernelInfo",
    "LstmWeights",
    "PackedBlockwiseWeights",
    "PackedConvWeights",
    "PackedDynamicWeights",
    "PackedGemmWeights",
    "PreparedConv",
    "active_isa",
    "available_isas",
    "avgpool",
    "blockwise_matmul",
    "conv_u8s8_nhwc",
    "dequantize",
    "dynamic_matmul",
    "dynamic_quantize",
    "gemm_kernel_name",
    "gemm_u8s8",
    "global_avgpool",
    "gru",
    "kernel_table",
    "lstm",
    "maxpool",
    "nchw_to_nhwc",
    "nhwc_to_nchw",
    "pack_blockwise_weights",
    "pack_conv_weights",
    "pack_dynamic_weights",
    "pack_gemm_weights",
    "pack_gru_weights",
    "pack_lstm_weights",
    "qadd",
    "qconcat",
    "quantize",
    "release_threads",
    "selected_kernel",
    "set_isa",
    "threads_alive",
    "use_isa",
]
