"""What a weighted node's weight and bias become: the :class:`WeightPlan`.

The weight spec's granularity is resolved for the node from its op rule
(:mod:`onnxq.planning.ops`): ``PerChannel()`` takes the op's output-channel axis (an explicit axis
must be that one: the bias needs one weight scale per output channel), ``PerBlock()`` the axis the
op sums over (an explicit one may be any axis of the weight); a 1-D weight is per tensor. The
bias is stored as int32 with ``scale = s_x * s_w`` only when the activations are quantized and the
weight has one scale per output channel (or per tensor); per-block and weight-only weights keep a
float bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from onnxq.graph import constant_array
from onnxq.planning.ops import OpRule
from onnxq.qconfig import QConfig, QSpec
from onnxq.scheme import PER_TENSOR, Granularity, PerBlock, PerChannel, PerTensor


@dataclass(frozen=True)
class WeightPlan:
    """The constant weight and (int32) bias of one weighted node.

    ``granularity`` is the weight's, with its axis resolved for this node (the op's output-channel
    axis per channel, its reduction axis per block); ``activation`` the input whose scale times the
    weight scale is the bias scale (None for a weight-only qconfig: activations stay float);
    ``bias`` the bias to store as int32 (None when there is none, or when the weight is per block
    or the activations float: then the bias stays float); ``bias_repeats`` how often the weight
    scales repeat along the bias (ConvTranspose with ``group`` > 1 is per-channel on axis 1, which
    holds ``C_out / group`` channels).
    """

    node: str
    weight: str
    granularity: Granularity
    spec: QSpec
    activation: str | None
    bias: str | None = None
    bias_repeats: int = 1

    @property
    def axis(self) -> int | None:
        """The channel (or block) axis of the weight; None per tensor."""
        return None if isinstance(self.granularity, PerTensor) else self.granularity.axis


def weight_plan(node: ir.Node, rule: OpRule, qconfig: QConfig) -> WeightPlan | str | None:
    """The node's weight plan; None without a constant weight; a reason when the weight's spec
    cannot apply to this node."""
    if rule.weight_input is None or rule.weight_axis is None or rule.reduction_axis is None:
        return None
    w_value = node.inputs[rule.weight_input]
    w = constant_array(w_value)
    if w is None or w_value is None:
        return None
    lowest, highest = rule.weight_ranks
    if w.ndim < lowest or (highest is not None and w.ndim > highest):
        span = f"{lowest}" if highest == lowest else f"{lowest}..{highest}"
        want = f"{lowest} or more" if highest is None else span
        return f"its weight '{w_value.name}' has rank {w.ndim}; {node.op_type} takes rank {want}"
    if w.dtype.kind == "f" and not np.all(np.isfinite(w)):
        bad = int(w.size - np.count_nonzero(np.isfinite(w)))
        return f"its weight '{w_value.name}' holds {bad} NaN/Inf value(s), which no int8 value stands for"
    spec = qconfig.weight
    granularity = _resolve_granularity(node, rule, spec.granularity, w.ndim)
    if isinstance(granularity, str):
        return granularity
    slots = rule.activation_indices(node)
    act = node.inputs[slots[0]] if qconfig.activation is not None and slots else None
    bias_name, repeats = None, 1
    if (
        rule.bias_input is not None
        and rule.bias_input < len(node.inputs)
        and act is not None
        and not isinstance(granularity, PerBlock)
    ):
        b = node.inputs[rule.bias_input]
        b_array = constant_array(b)
        assert rule.output_channels is not None
        n_out = rule.output_channels(node, w)
        if b_array is not None and b_array.dtype.kind == "f" and not np.all(np.isfinite(b_array)):
            bad = int(b_array.size - np.count_nonzero(np.isfinite(b_array)))
            return f"its bias '{b.name}' holds {bad} NaN/Inf value(s), which no int32 value stands for"
        if (
            b is not None
            and b_array is not None
            and b_array.dtype == np.float32
            and (b_array.shape in ((n_out,), (1, n_out)))
        ):
            bias_name = b.name
            if isinstance(granularity, PerChannel):
                repeats = n_out // w.shape[granularity.axis]  # type: ignore[index]
    return WeightPlan(
        node.name or "",
        w_value.name or "",
        granularity,
        spec,
        None if act is None else act.name or "",
        bias_name,
        repeats,
    )


def _resolve_granularity(node: ir.Node, rule: OpRule, g: Granularity, rank: int) -> Granularity | str:
    """``g`` with the axis this node needs (or the reason it cannot apply)."""
    assert rule.weight_axis is not None and rule.reduction_axis is not None
    if isinstance(g, PerTensor) or rank == 0:
        return PER_TENSOR
    if isinstance(g, PerChannel):
        if rank < 2:  # a 1-D weight has one output channel per element: per tensor, as before
            return PER_TENSOR
        natural = rule.weight_axis(node, rank)
        axis = natural if g.axis is None else g.axis
        if not -rank <= axis < rank or axis % rank != natural:
            return (
                f"weight per-channel axis {axis} is not {node.op_type}'s output-channel axis "
                f"{natural} (rank {rank})"
            )
        return PerChannel(natural)
    axis = rule.reduction_axis(node, rank) if g.axis is None else g.axis
    if not -rank <= axis < rank:
        return f"weight block axis {axis} is out of range for a weight of rank {rank}"
    return PerBlock(axis % rank, g.block_size)


__all__ = ["WeightPlan", "weight_plan"]
