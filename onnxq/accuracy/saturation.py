"""The saturation audit of the ``x86-avx2`` target: which layers need 7-bit inputs.

AVX2 integer kernels without VNNI (onnxruntime's MLAS among them) multiply uint8 activations by
int8 weights with ``vpmaddubsw``, which adds each pair of adjacent products along the reduction
axis in 16 bits, saturating::

    s = a[k] * w[k] + a[k + 1] * w[k + 1],   |s| <= 32767

(for a convolution the pairs are adjacent input channels at one kernel position; for a Gemm,
adjacent input features). Activations are ``a >= 0``, so a pair whose weights differ in sign
never saturates (``|s| <= 255 * 127``); a same-sign pair can, up to
``a_max[k] |w[k]| + a_max[k + 1] |w[k + 1]|`` where ``a_max`` is the largest quantized value each
input channel took in calibration. :func:`pair_sum_bound` computes that bound for a layer (pure
numpy); a layer whose bound exceeds 32767 needs ``reduce_range`` on its input (7-bit activations
halve every product), and only those. PyTorch's x86 presets put every layer at 7 bits instead.

The bound is conservative: the largest values of two channels need not come with the same
sample, so a layer it flags may never saturate in practice; a layer it passes never does.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx_ir as ir

from onnxq.calibration.observers import Observer
from onnxq.graph import iter_graphs
from onnxq.planning.ops import rule_of
from onnxq.planning.plan import QuantPlan
from onnxq.qparams import QParams, quantize
from onnxq.weights import QuantizedWeights

#: The largest magnitude a 16-bit lane holds.
INT16_MAX = 32767


def pair_sum_bound(a_max: np.ndarray, weight: np.ndarray, channel_axis: int) -> int:
    """The largest ``|a[k] w[k] + a[k+1] w[k+1]|`` any row of the int8 ``weight`` can reach with
    inputs ``0 <= a[k] <= a_max[k]`` (``a_max``: one value per input channel, along
    ``channel_axis`` of ``weight``)."""
    w = np.moveaxis(np.asarray(weight).astype(np.int64), channel_axis, -1)
    w = w.reshape(-1, w.shape[-1])  # rows: output channels x kernel positions; columns: input channels
    a = np.asarray(a_max, dtype=np.int64).reshape(-1)
    if w.shape[1] != a.shape[0]:
        raise ValueError(f"weight has {w.shape[1]} input channels, the activation maxima {a.shape[0]}")
    if a.shape[0] % 2:  # the kernels pad K with a zero channel
        w, a = np.pad(w, ((0, 0), (0, 1))), np.pad(a, (0, 1))
    even, odd = w[:, 0::2], w[:, 1::2]
    same_sign = np.sign(even) * np.sign(odd) > 0
    sums = np.abs(even) * a[0::2] + np.abs(odd) * a[1::2]
    single = np.maximum(np.abs(even) * a[0::2], np.abs(odd) * a[1::2])
    return int(np.max(np.where(same_sign, sums, single), initial=0))


def saturates(a_max: np.ndarray, weight: np.ndarray, channel_axis: int) -> bool:
    """Whether some pair of the layer can leave the 16-bit range."""
    return pair_sum_bound(a_max, weight, channel_axis) > INT16_MAX


def audit_layers(
    plan: QuantPlan,
    model: ir.Model,
    act_qparams: Mapping[int, QParams],
    weights: QuantizedWeights,
    observers: Mapping[str, Observer],
) -> tuple[frozenset[int], tuple[str, ...]]:
    """The tensor groups whose layers need 7-bit inputs, and one report line per such layer.

    A layer is audited when its input is uint8 and the calibration kept the input's per-channel
    maxima (the ``channel_minmax`` observer) on the weight's input-channel axis: Conv without
    groups, 2-D Gemm/MatMul. Any other uint8 layer (grouped convs aside: their kernels do not pair
    channels) is taken as able to saturate, which is what the bound gives for 255 everywhere.
    """
    nodes = {n.name: n for g in iter_graphs(model.graph) for n in g}
    flagged: set[int] = set()
    lines: list[str] = []
    for name, wp in plan.weights.items():
        node, node_weights = nodes[name], weights.nodes.get(name)
        if wp.activation is None or node_weights is None or node.op_type not in _AUDITED:
            continue
        qp = act_qparams.get(plan.group_of[wp.activation])
        if qp is None or qp.dtype != "uint8" or qp.block_size is not None:
            continue
        rule = rule_of(node)
        if node.op_type == "Conv" and node.attributes.get_int("group", 1) != 1:
            continue
        assert rule is not None and rule.reduction_axis is not None
        w = node_weights.weight.values
        axis = rule.reduction_axis(node, w.ndim)
        x = node.inputs[0]
        features_on_axis_1 = node.op_type == "Conv" or (
            x is not None and x.shape is not None and len(x.shape) == 2
        )
        obs = observers.get(wp.activation) if features_on_axis_1 else None
        a_max = _quantized_channel_max(obs, qp, w.shape[1] if node.op_type == "Conv" else w.shape[axis])
        bound = pair_sum_bound(a_max, w, 1 if node.op_type == "Conv" else axis)
        if bound > INT16_MAX:
            flagged.add(plan.group_of[wp.activation])
            lines.append(f"{node.op_type} '{name}': adjacent u8 x s8 products reach {bound} > {INT16_MAX}")
    return frozenset(flagged), tuple(lines)


_AUDITED = ("Conv", "Gemm", "MatMul")


def _quantized_channel_max(obs: Observer | None, qp: QParams, channels: int) -> np.ndarray:
    """Each input channel's largest quantized value; 255 for all when no per-channel maxima exist."""
    hi = getattr(obs, "max_val", None)
    if hi is None or np.ndim(hi) != 1 or np.shape(hi)[0] != channels:
        return np.full(channels, 255, np.int64)
    seen = np.isfinite(hi)
    q = quantize(np.where(seen, hi, 0.0).astype(np.float32), qp).astype(np.int64)
    return np.where(seen, q, 0)


__all__ = ["INT16_MAX", "audit_layers", "pair_sum_bound", "saturates"]
