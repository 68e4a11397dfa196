"""Fold BatchNormalization into the Conv / ConvTranspose / Gemm that feeds it.

In inference, ``BN(y) = gamma * (y - mean) / sqrt(var + eps) + beta`` is an affine map per output
channel ``c``. With ``s[c] = gamma[c] / sqrt(var[c] + eps)`` and ``y = W * x + b``:

    W'[c] = W[c] * s[c]                      (every weight of output channel c)
    b'[c] = (b[c] - mean[c]) * s[c] + beta[c]

so ``BN(W * x + b) = W' * x + b'``. The ops that absorb a BN, and the output-channel axis of their
weight, are their op rules' (:mod:`onnxq.planning.ops`):

* Conv: ``W`` is ``[Cout, Cin/g, k...]`` -> axis 0.
* ConvTranspose: ``W`` is ``[Cin, Cout/g, k...]``; output channel ``c = j * (Cout/g) + o`` for group
  ``j`` and column ``o``, so ``W`` is viewed as ``[g, Cin/g, Cout/g, k...]`` and scaled on axis 2.
* Gemm ``Y = alpha * A B' + beta_g * C``: ``B`` is ``[K, N]`` (transB=0, axis 1) or ``[N, K]``
  (transB=1, axis 0); the bias is ``b = beta_g * C`` (C broadcast to ``[N]``), written back with
  ``beta_g = 1``.

A fold needs: constant weight (and bias), constant BN parameters, the producer's output read only
by the BN, and the BN's extra training outputs (mean/var, opset < 14 or training_mode=1) unused.
A folded BN always takes inference semantics (running statistics), which is what deployment runs.
Anything else is left in float and reported with the reason.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from onnxq.graph import (
    NameAuthority,
    constant_array,
    is_op,
    new_initializer,
    remove_node,
    remove_unused_initializers,
    replace_all_uses,
    sole_consumer,
)
from onnxq.passes.base import GraphPass, PassResult
from onnxq.planning.ops import get_rule, rule_of, supported_ops

logger = logging.getLogger(__name__)


@np.errstate(invalid="ignore", over="ignore")
def fold_bn_params(
    w: np.ndarray,
    b: np.ndarray | None,
    gamma: np.ndarray,
    beta: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    eps: float,
    *,
    axis: int = 0,
    groups: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(W', b')`` with the BN folded in (see the module docstring).

    Args:
        w: Weight; its output channels lie on ``axis``.
        b: Bias of length ``C`` (output channels) or None for zero.
        gamma, beta, mean, var: BN parameters, each of length ``C``.
        eps: BN epsilon.
        axis: Output-channel axis of ``w`` (0: Conv, Gemm transB=1; 1: ConvTranspose, Gemm transB=0).
        groups: For a ConvTranspose weight ``[Cin, Cout/g, ...]``: the group count ``g``
            (``axis`` must be 1); the output channels are then ``g * w.shape[1]``.

    Computed in float64 and returned in ``w``'s dtype. Non-finite weights stay non-finite, without
    a warning (a signalling NaN warns when widened; the quantizer reports such weights later).
    """
    w64 = np.asarray(w, dtype=np.float64)
    params = [np.asarray(p, np.float64) for p in (gamma, beta, mean, var)]
    if any(p.ndim != 1 or p.shape != params[0].shape for p in params):
        raise ValueError(
            f"BN scale/bias/mean/var must be vectors of one length, got {[p.shape for p in params]}"
        )
    if b is not None and np.shape(b) != params[0].shape:
        raise ValueError(f"bias of shape {np.shape(b)} does not match the BN's {params[0].shape[0]} channels")
    if not all(np.all(np.isfinite(p)) for p in params) or not np.all(params[3] + float(eps) > 0):
        raise ValueError("BN parameters must be finite with variance + epsilon > 0")
    scale = params[0] / np.sqrt(params[3] + float(eps))
    channels = scale.shape[0]
    if groups > 1:
        if axis != 1 or w64.shape[0] % groups:
            raise ValueError(f"groups={groups} needs axis=1 and Cin={w64.shape[0]} divisible by groups")
        per_group = w64.shape[1]
        if groups * per_group != channels:
            raise ValueError(f"weight gives {groups}x{per_group} output channels, BN has {channels}")
        view = w64.reshape(groups, w64.shape[0] // groups, per_group, *w64.shape[2:])
        s = scale.reshape(groups, 1, per_group, *([1] * (w64.ndim - 2)))
        w_folded = (view * s).reshape(w64.shape)
    else:
        if w64.shape[axis] != channels:
            raise ValueError(f"weight has {w64.shape[axis]} output channels (axis {axis}), BN has {channels}")
        shape = [1] * w64.ndim
        shape[axis] = channels
        w_folded = w64 * scale.reshape(shape)
    b64 = np.zeros(channels) if b is None else np.asarray(b, np.float64)
    b_folded = (b64 - np.asarray(mean, np.float64)) * scale + np.asarray(beta, np.float64)
    return w_folded.astype(w.dtype), b_folded.astype(w.dtype)


def _gemm_bias(node: ir.Node, channels: int) -> np.ndarray | str | None:
    """``beta_g * C`` as a length-``channels`` vector, None without C, or a refusal reason."""
    if len(node.inputs) < 3 or node.inputs[2] is None:
        return None
    c = constant_array(node.inputs[2])
    if c is None:
        return f"bias '{node.inputs[2].name}' is not constant"
    if c.size not in (1, channels) or (c.ndim == 2 and c.shape[0] != 1) or c.ndim > 2:
        return f"bias shape {list(c.shape)} is not a per-output vector of {channels}"
    beta_g = node.attributes.get_float("beta", 1.0)
    return np.broadcast_to(c.reshape(-1), (channels,)) * beta_g


class FoldBatchNorm(GraphPass):
    """Fold every foldable BatchNormalization into its producer; report the others."""

    name = "fold_batchnorm"

    def call(self, model: ir.Model) -> PassResult:
        graph = model.graph
        names = NameAuthority(graph)
        notes: list[str] = []
        count = 0
        for bn in [n for n in graph if is_op(n, "BatchNormalization")]:
            reason = self._fold(graph, bn, names)
            if reason is None:
                count += 1
            else:
                notes.append(f"BatchNormalization '{bn.name}' stays float: {reason}")
        if count:
            remove_unused_initializers(graph)
            logger.info("fold_batchnorm: folded %d BatchNormalization node(s)", count)
        return PassResult(model, count, tuple(notes))

    @staticmethod
    def _bn_params(bn: ir.Node) -> tuple[np.ndarray, ...] | str:
        params = [constant_array(v) for v in bn.inputs[1:5]]
        if len(params) != 4 or any(p is None for p in params):
            return "its scale/bias/mean/var are not all constant"
        for out in bn.outputs[1:]:
            if out.uses() or out.is_graph_output():
                return f"its training output '{out.name}' is used"
        return tuple(params)  # type: ignore[arg-type]

    def _fold(self, graph: ir.Graph, bn: ir.Node, names: NameAuthority) -> str | None:
        x = bn.inputs[0]
        node = x.producer() if x is not None else None
        rule = None if node is None else rule_of(node)
        if node is None or rule is None or not rule.absorbs_batchnorm or rule.weight_axis is None:
            what = "a graph input" if node is None else f"{node.op_type} '{node.name}'"
            return f"its input comes from {what}, not {'/'.join(_absorbing_ops())}"
        if sole_consumer(x) is not bn:
            return f"the output of {node.op_type} '{node.name}' has other readers"
        params = self._bn_params(bn)
        if isinstance(params, str):
            return params
        gamma, beta, mean, var = params
        eps = bn.attributes.get_float("epsilon", 1e-5)
        w_value = node.inputs[1]
        w = constant_array(w_value)
        if w is None or not np.issubdtype(w.dtype, np.floating):
            return f"weight of {node.op_type} '{node.name}' is not a constant float tensor"
        channels = gamma.shape[0] if gamma.ndim == 1 else 0
        axis = rule.weight_axis(node, w.ndim)
        assert rule.output_channels is not None
        # the channel axis may hold one group's output channels only (ConvTranspose with groups)
        groups = max(1, rule.output_channels(node, w) // max(1, int(w.shape[axis])))
        if node.op_type == "Gemm":
            bias = _gemm_bias(node, channels)
            if isinstance(bias, str):
                return f"Gemm '{node.name}': {bias}"
        else:
            bias = None
            if len(node.inputs) > 2 and node.inputs[2] is not None:
                bias = constant_array(node.inputs[2])
                if bias is None:
                    return f"bias of {node.op_type} '{node.name}' is not constant"
        try:
            w_new, b_new = fold_bn_params(w, bias, gamma, beta, mean, var, eps, axis=axis, groups=groups)
        except ValueError as exc:
            return f"{node.op_type} '{node.name}': {exc}"
        w_name = w_value.name or f"{node.name}_weight"
        b_name = node.inputs[2].name if len(node.inputs) > 2 and node.inputs[2] is not None else None
        node.replace_input_with(1, new_initializer(graph, w_new, names, f"{w_name}_bnfold"))
        if len(node.inputs) < 3:
            node.resize_inputs(3)
        node.replace_input_with(
            2, new_initializer(graph, b_new, names, f"{b_name or node.name + '_bias'}_bnfold")
        )
        if node.op_type == "Gemm":
            node.attributes["beta"] = ir.AttrFloat32("beta", 1.0)
        replace_all_uses(bn.outputs[0], x, names)
        remove_node(bn)
        return None


def _absorbing_ops() -> list[str]:
    return [op for op in supported_ops() if (r := get_rule(op)) is not None and r.absorbs_batchnorm]


__all__ = ["FoldBatchNorm", "fold_bn_params"]
