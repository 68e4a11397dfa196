"""The input Hessians GPTQ needs, accumulated over calibration data in the same runs.

For a layer whose input rows are ``x_r`` (a MatMul's ``[..., K]`` input viewed as ``[rows, K]``),
:class:`HessianAccumulator` keeps ``S = sum_r x_r^T x_r`` (float64 ``[K, K]``) and the row count
``R``: memory ``8 K^2`` bytes whatever the number of samples, and two accumulators merge exactly
(``S`` and ``R`` add). ``H = 2 S / R`` (the paper's ``2 X^T X``, averaged so that its scale does not
depend on the number of rows; GPTQ's result does not depend on that scale). Rows holding NaN/Inf
are left out and counted.

:func:`layer_hessians` observes the first input of the weight-only plan's MatMul and Gemm nodes
(those with a 2-D constant weight; a Gemm with ``transA`` is left out) through the calibration
engine, one accumulator per input tensor (layers that read the same tensor share it), and returns
each node's Hessian.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import onnx_ir as ir

from onnxq.graph import int_attr
from onnxq.planning.weight_only import WeightOnlyAction, WeightOnlyPlan


class HessianAccumulator:
    """Streaming ``X^T X`` of the rows of a tensor's last axis (``k`` values each)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.sum = np.zeros((k, k), np.float64)
        self.rows = 0
        self.nonfinite_count = 0

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x)
        if x.shape[-1] != self.k:
            raise ValueError(f"last axis has {x.shape[-1]} values, the weight sums over {self.k}")
        rows = x.reshape(-1, self.k).astype(np.float64)
        finite = np.isfinite(rows).all(axis=1)
        if not finite.all():
            self.nonfinite_count += int((~np.isfinite(rows)).sum())
            rows = rows[finite]
        self.sum += rows.T @ rows
        self.rows += len(rows)

    def merge(self, other: HessianAccumulator) -> HessianAccumulator:
        out = HessianAccumulator(self.k)
        out.sum = self.sum + other.sum
        out.rows = self.rows + other.rows
        out.nonfinite_count = self.nonfinite_count + other.nonfinite_count
        return out

    @property
    def reached(self) -> bool:
        return self.rows > 0

    @property
    def hessian(self) -> np.ndarray:
        """``2 X^T X / rows`` (float64 ``[K, K]``)."""
        if not self.rows:
            raise ValueError("no row observed")
        return 2.0 * self.sum / self.rows


def hessian_inputs(model: ir.Model, plan: WeightOnlyPlan) -> dict[str, tuple[str, int]]:
    """``{node: (input tensor, K)}`` for the plan's MatMul / Gemm nodes GPTQ can use."""
    nodes = {node.name: node for node in model.graph}
    out = {}
    for decision in plan.planned(*WeightOnlyAction):
        node = nodes.get(decision.name)
        if node is None or node.op_type not in ("MatMul", "Gemm") or int_attr(node, "transA", 0):
            continue
        x, w = node.inputs[0], node.inputs[1]
        shape = None if w is None else w.shape
        if x is None or not x.name or shape is None or len(shape) != 2:
            continue
        k = shape[1] if node.op_type == "Gemm" and int_attr(node, "transB", 0) else shape[0]
        if isinstance(k, int):
            out[decision.name] = (x.name, k)
    return out


def layer_hessians(
    model: ir.Model, plan: WeightOnlyPlan, batches: Iterable[Any], *, progress: bool = True
) -> dict[str, np.ndarray]:
    """Each GPTQ-able planned node's input Hessian over ``batches`` (one calibration run)."""
    from onnxq.calibration.engine import calibrate  # lazy: the engine loads onnxruntime

    inputs = hessian_inputs(model, plan)
    accumulators = {name: HessianAccumulator(k) for name, k in inputs.values()}
    calibrate(model, accumulators, batches, progress=progress)  # type: ignore[arg-type]
    reached = {name: acc.hessian for name, acc in accumulators.items() if acc.reached}
    return {node: reached[name] for node, (name, _) in inputs.items() if name in reached}


__all__ = ["HessianAccumulator", "hessian_inputs", "layer_hessians"]
