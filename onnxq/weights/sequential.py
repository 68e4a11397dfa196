"""Sequential input Hessians: each layer calibrated on the inputs the already-quantized layers
before it produce (the GPTQ paper's order; :func:`onnxq.weights.hessian.layer_hessians` takes all
of them from the fp32 model in one run instead).

GPTQ makes ``Q`` minimise ``||X W^T - X Q^T||^2`` on the inputs ``X`` it is given. In the quantized
model a layer does not see the fp32 model's inputs ``X`` but ``X~``, the output of layers whose
weights are already rounded; with ``H~ = 2 X~^T X~ / rows`` its rounding is chosen for the
inputs it will actually meet.

The plan's nodes are put in stages: a node's stage is the largest number of planned nodes on any
path from the graph inputs to it, so the nodes of one stage do not feed each other (``q, k, v``
of one layer share a stage; ``up`` then ``down`` do not). For stage ``s = 0, 1, ...``:

1. the nodes of stages ``< s`` read their weights quantized and dequantized (``W' = (q - z) s``,
   the weight method's own result: what the quantized model computes, in float);
2. one calibration run over the data accumulates ``H~`` of the stage's inputs (streaming
   :class:`~onnxq.weights.hessian.HessianAccumulator`: memory ``8 K^2`` bytes per input, whatever
   the number of samples);
3. the stage's weights are quantized with those Hessians (and the data-free ones, a Gather's,
   rounded) and take their dequantized values for the next stages.

The cost is one calibration run per stage that holds a Hessian-using node (a decoder layer: 3-4)
instead of one; ``data`` must be iterable again for each run. The model is given back unchanged:
the dequantized weights are new initializers, removed and the nodes' inputs restored at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import onnx_ir as ir

from onnxq.errors import ConfigError
from onnxq.graph import constant_array
from onnxq.planning.weight_only import WeightOnlyAction, WeightOnlyDecision, WeightOnlyPlan
from onnxq.weights.hessian import HessianAccumulator, hessian_inputs
from onnxq.weights.registry import QuantizedTensor
from onnxq.weights.weight_only import dequantize_weight

#: ``(decision, weight, hessian or None) -> QuantizedTensor``: how the caller rounds one weight.
Rounder = Callable[[WeightOnlyDecision, np.ndarray, np.ndarray | None], QuantizedTensor]


def planned_stages(model: ir.Model, decisions: Iterable[WeightOnlyDecision]) -> dict[str, int]:
    """``{node: stage}``: the most planned nodes on a path from the graph's inputs to the node."""
    planned = {d.name for d in decisions}
    level: dict[int, int] = {}  # by id of ir.Value: planned nodes upstream of it, at most
    stages = {}
    for node in model.graph:  # topological order
        before = max((level.get(id(v), 0) for v in node.inputs if v is not None), default=0)
        if node.name in planned:
            stages[node.name] = before
        for out in node.outputs:
            level[id(out)] = before + (node.name in planned)
    return stages


def sequential_hessians(
    model: ir.Model,
    plan: WeightOnlyPlan,
    data: Iterable[Any],
    rounder: Rounder,
    *,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Each GPTQ-able planned node's input Hessian, calibrated stage by stage on the outputs of
    the earlier stages quantized by ``rounder`` (module docstring)."""
    from onnxq.calibration.engine import calibrate  # lazy: the engine loads onnxruntime

    if iter(data) is data:
        raise ConfigError("sequential GPTQ reads the calibration data once per stage: give a list or a "
                          "re-iterable source, not an iterator")  # fmt: skip
    model.graph.sort()
    decisions = plan.planned(*WeightOnlyAction)
    stages = planned_stages(model, decisions)
    inputs = hessian_inputs(model, plan)
    nodes = {node.name: node for node in model.graph}
    hessians: dict[str, np.ndarray] = {}
    swapped: list[tuple[ir.Node, int, ir.Value, ir.Value]] = []
    try:
        for stage in sorted(set(stages.values())):
            members = [d for d in decisions if stages.get(d.name) == stage]
            wanted = {inputs[d.name] for d in members if d.name in inputs}
            if wanted:
                accumulators = {name: HessianAccumulator(k) for name, k in wanted}
                calibrate(model, accumulators, data, progress=progress)  # type: ignore[arg-type]
                for d in members:
                    if d.name in inputs and accumulators[inputs[d.name][0]].reached:
                        hessians[d.name] = accumulators[inputs[d.name][0]].hessian
            for d in members:
                node = nodes[d.name]
                original = node.inputs[d.weight_input]
                weight = constant_array(original)
                assert original is not None and weight is not None
                q = rounder(d, weight, hessians.get(d.name))
                dequantized = dequantize_weight(q).reshape(weight.shape).astype(weight.dtype)
                value = ir.Value(name=f"{original.name}_sequential_{len(swapped)}",
                                 const_value=ir.tensor(dequantized))  # fmt: skip
                model.graph.register_initializer(value)
                node.replace_input_with(d.weight_input, value)
                swapped.append((node, d.weight_input, original, value))
    finally:
        for node, index, original, value in reversed(swapped):
            node.replace_input_with(index, original)
            assert value.name is not None
            model.graph.initializers.pop(value.name)
    return hessians


__all__ = ["planned_stages", "sequential_hessians"]
