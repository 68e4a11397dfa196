"""Rewrite passes, one per module, and the ordered structural pipeline.

The structural pipeline prepares a float model for quantization without changing what it computes:

1. :class:`~onnxq.passes.normalize.Normalize` - opset >= 13 (or 21), constants as initializers,
   ``Sum`` -> ``Add``, every node named;
2. :class:`~onnxq.passes.resize_axes.ExpandResizeAxes` - a Resize's ``axes`` spelled as full-rank
   scales or sizes (onnxruntime's layout transformer fails on quantized models with them);
3. :class:`~onnxq.passes.global_pool.ReduceMeanToGlobalPool` - spatial ``ReduceMean`` -> global pool;
4. :class:`~onnxq.passes.fold_batchnorm.FoldBatchNorm` - BatchNormalization folded into its producer;
5. :class:`~onnxq.passes.matmul_add_to_gemm.MatMulAddToGemm` - ``MatMul + Add`` -> ``Gemm`` where legal;
6. :class:`~onnxq.passes.equalize.EqualizeConvPairs` - cross-layer equalisation of Conv -> (ReLU) ->
   Conv pairs, only when asked (``equalize=True``): it changes the weights, not what the model computes;
7. :class:`~onnxq.passes.zero_bias.GiveZeroBias` - a zero bias for every Conv/Gemm without one, only
   for bias correction (``bias_correction=True``).

Every pass is an ``onnx_ir`` in-place pass (:mod:`onnxq.passes.base`). :func:`run_passes` runs a
sequence of them and keeps each one's result (its notes go into the report); it does not wrap
errors, so a pass's :class:`~onnxq.errors.OnnxqError` reaches the user as its own one line.

Q/DQ insertion (:class:`~onnxq.passes.insert_qdq.InsertQDQ`) needs calibration results and the
quantized weights, and runs afterwards, on its own.

Dynamic quantization runs :func:`dynamic_passes` on the structurally prepared model, from a
:class:`~onnxq.planning.dynamic.DynamicPlan`: :class:`~onnxq.passes.dynamic_matmul.DynamicMatMul`
(MatMul/Gemm on activations quantized at run time), :class:`~onnxq.passes.dynamic_lstm.DynamicLSTM`
(onnxruntime's DynamicQuantizeLSTM) and :class:`~onnxq.passes.dequantize_weights.DequantizeWeights`
(weight-only storage).

Weight-only quantization runs :func:`weight_only_passes` from a
:class:`~onnxq.planning.weight_only.WeightOnlyPlan`: :class:`~onnxq.passes.matmul_nbits.MatMulNBits`
(onnxruntime's 4-bit matmul) and :class:`~onnxq.passes.dequantize_blocks.DequantizeBlocks` (int8
or 4-bit weights behind DequantizeLinear).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import onnx_ir as ir

from onnxq.opsets import MIN_OPSET
from onnxq.passes.base import GraphPass, PassResult
from onnxq.passes.dequantize_blocks import DequantizeBlocks
from onnxq.passes.dequantize_weights import DequantizeWeights
from onnxq.passes.dynamic_lstm import DynamicLSTM
from onnxq.passes.dynamic_matmul import DynamicMatMul
from onnxq.passes.dynamic_rnn import DynamicRecurrent
from onnxq.passes.equalize import EqualizeConvPairs
from onnxq.passes.fold_batchnorm import FoldBatchNorm, fold_bn_params
from onnxq.passes.global_pool import ReduceMeanToGlobalPool
from onnxq.passes.matmul_add_to_gemm import MatMulAddToGemm
from onnxq.passes.matmul_nbits import MatMulNBits
from onnxq.passes.normalize import Normalize
from onnxq.passes.resize_axes import ExpandResizeAxes
from onnxq.passes.zero_bias import GiveZeroBias
from onnxq.planning.dynamic import DynamicPlan
from onnxq.planning.weight_only import WeightOnlyPlan

logger = logging.getLogger(__name__)


def structural_passes(
    min_opset: int = MIN_OPSET, *, equalize: bool = False, bias_correction: bool = False
) -> tuple[GraphPass, ...]:
    """The structural pipeline, in the order it must run; models older than ``min_opset`` are upgraded.
    ``equalize`` adds cross-layer equalisation after BatchNorm folding, ``bias_correction`` zero
    biases where layers have none."""
    passes: tuple[GraphPass, ...] = (
        Normalize(min_opset=min_opset),
        ExpandResizeAxes(),
        ReduceMeanToGlobalPool(),
        FoldBatchNorm(),
        MatMulAddToGemm(),
    )
    passes += (EqualizeConvPairs(),) if equalize else ()
    return (*passes, GiveZeroBias()) if bias_correction else passes


def dynamic_passes(plan: DynamicPlan) -> tuple[GraphPass, ...]:
    """The rewrites of a dynamic quantization, in order, each doing the part of ``plan`` it owns."""
    return (DynamicMatMul(plan), DynamicLSTM(plan), DynamicRecurrent(plan), DequantizeWeights(plan))


def weight_only_passes(
    plan: WeightOnlyPlan,
    method: str = "rtn",
    hessians: Mapping[str, np.ndarray] | None = None,
    *,
    mse_scales: bool = False,
) -> tuple[GraphPass, ...]:
    """The rewrites of a weight-only quantization, weights rounded by the weight method ``method``
    (with the layers' input ``hessians`` by node name, for ``gptq``; ``mse_scales``: scales by
    least squared error, :mod:`onnxq.weights.clip_search`)."""
    return (
        MatMulNBits(plan, method, hessians, mse_scales=mse_scales),
        DequantizeBlocks(plan, method, hessians, mse_scales=mse_scales),
    )


def run_passes(model: ir.Model, passes: Sequence[GraphPass]) -> tuple[ir.Model, tuple[PassResult, ...]]:
    """Run ``passes`` in order, each on the previous one's model; return the last model and every result."""
    results: list[PassResult] = []
    for graph_pass in passes:
        result = graph_pass(model)
        model = result.model
        results.append(result)
        logger.debug("pass %s: %d rewrite(s), %d note(s)", graph_pass.name, result.count, len(result.notes))
    return model, tuple(results)


__all__ = [
    "DequantizeBlocks",
    "DequantizeWeights",
    "DynamicLSTM",
    "DynamicMatMul",
    "DynamicRecurrent",
    "EqualizeConvPairs",
    "ExpandResizeAxes",
    "FoldBatchNorm",
    "GiveZeroBias",
    "GraphPass",
    "MatMulAddToGemm",
    "MatMulNBits",
    "Normalize",
    "PassResult",
    "ReduceMeanToGlobalPool",
    "dynamic_passes",
    "fold_bn_params",
    "run_passes",
    "structural_passes",
    "weight_only_passes",
]
