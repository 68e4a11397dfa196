"""Rewrite passes, one per module, and the ordered structural pipeline.

The structural pipeline prepares a float model for quantization without changing what it computes:

1. :class:`~onnxq.passes.normalize.Normalize` - opset >= 13, constants as initializers, ``Sum`` -> ``Add``;
2. :class:`~onnxq.passes.global_pool.ReduceMeanToGlobalPool` - spatial ``ReduceMean`` -> global pool;
3. :class:`~onnxq.passes.fold_batchnorm.FoldBatchNorm` - BatchNormalization folded into its producer;
4. :class:`~onnxq.passes.fuse_activations.FuseActivations` - ``MatMul + Add`` -> ``Gemm`` where legal
   (the fusion groups themselves come from :func:`find_fusion_groups`).

Q/DQ insertion (``insert_qdq``) needs calibration results and runs afterwards, on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import onnx_ir as ir

from onnxq.passes.base import GraphPass, PassResult
from onnxq.passes.fold_batchnorm import FoldBatchNorm, fold_bn_params
from onnxq.passes.fuse_activations import FuseActivations, FusionGroup, find_fusion_groups
from onnxq.passes.global_pool import ReduceMeanToGlobalPool
from onnxq.passes.normalize import Normalize

logger = logging.getLogger(__name__)


def structural_passes() -> tuple[GraphPass, ...]:
    """The structural pipeline, in the order it must run."""
    return (Normalize(), ReduceMeanToGlobalPool(), FoldBatchNorm(), FuseActivations())


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
    "FoldBatchNorm",
    "FuseActivations",
    "FusionGroup",
    "GraphPass",
    "Normalize",
    "PassResult",
    "ReduceMeanToGlobalPool",
    "find_fusion_groups",
    "fold_bn_params",
    "run_passes",
    "structural_passes",
]
