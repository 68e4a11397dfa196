"""What the layers' data plumbing of calibration needs: the input means bias correction observes
and the input rows AdaRound keeps, per layer of a plan (gathered in the calibration runs)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import onnx_ir as ir

from onnxq.accuracy.input_means import ChannelMean
from onnxq.planning.plan import QuantPlan, plannable_graphs
from onnxq.weights.adaround import AdaRoundConfig
from onnxq.weights.bias_correction import CORRECTED_INPUT_AXES


def layer_input_means(model: ir.Model, plan: QuantPlan) -> dict[str, ChannelMean]:
    """A mean accumulator for the input of every layer whose bias correction can correct."""
    op_types = {node.name: node.op_type for graph in plannable_graphs(model.graph) for node in graph}
    return {
        wp.activation: ChannelMean(CORRECTED_INPUT_AXES[op_types[wp.node]])
        for wp in plan.weights.values()
        if wp.activation is not None and wp.bias is not None and op_types.get(wp.node) in CORRECTED_INPUT_AXES
    }


def layer_reservoirs(model: ir.Model, plan: QuantPlan, rows: int) -> dict[str, tuple[str, Any]]:
    """By node: its input tensor's name and a reservoir of at most ``rows`` of its input rows."""
    from onnxq.accuracy.layer_inputs import reservoir_for
    from onnxq.graph import constant_array

    nodes = {node.name: node for graph in plannable_graphs(model.graph) for node in graph}
    out: dict[str, tuple[str, Any]] = {}
    for wp in plan.weights.values():
        node = nodes.get(wp.node)
        w = None if node is None else constant_array(node.inputs[1])
        if node is not None and w is not None and wp.activation is not None:
            reservoir = reservoir_for(node, tuple(w.shape), rows)
            if reservoir is not None:
                out[wp.node] = (wp.activation, reservoir)
    return out


def distinct_inputs(reservoirs: Mapping[str, tuple[str, Any]]) -> Iterable[dict[str, Any]]:
    """The reservoirs in rounds keyed by input tensor, each tensor at most once a round."""
    rounds: list[dict[str, Any]] = []
    for name, reservoir in reservoirs.values():
        free = next((r for r in rounds if name not in r), None)
        if free is None:
            rounds.append(free := {})
        free[name] = reservoir
    return rounds


def adaround_rows(weight_method: str, weight_config: object | None) -> int:
    """The input rows per layer to keep while calibrating for ``weight_method`` (0 but for AdaRound)."""
    if weight_method != "adaround":
        return 0
    return weight_config.rows if isinstance(weight_config, AdaRoundConfig) else AdaRoundConfig().rows


__all__ = ["adaround_rows", "distinct_inputs", "layer_input_means", "layer_reservoirs"]
