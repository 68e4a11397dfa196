"""SmoothQuant (Xiao et al. 2022): activation outliers moved into the following weights.

A transformer's LayerNorm output ``X`` often has a few channels whose values are 10-100x the
others. One activation scale per tensor then spends its levels on those channels and leaves the
rest a handful. For a matmul ``Y = X W`` (``W`` of shape ``[C, N]``, input channel ``j`` is row
``j``) any ``s_j > 0`` gives the same product::

    Y = (X diag(s)^-1) (diag(s) W)

and the migration strength ``alpha`` chooses ``s`` from the activation's channel maxima
``max |X_j|`` (over the calibration data) and the weight's row maxima ``max |W_j|``::

    s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)      (s_j = 1 where either maximum is 0)

so that ``max |X_j / s_j| = max |s_j W_j| = max|X_j|^(1-alpha) max|W_j|^alpha``: with ``alpha = 0.5``
the activation and the weight share the channel's difficulty equally.

Where the division by ``s`` goes: this pass folds it into the LayerNormalization that produces
``X``, which is exact (``LN(x) * gamma / s + beta / s = X / s``)::

    gamma'_j = gamma_j / s_j        beta'_j = beta_j / s_j        W'[j, :] = W[j, :] * s_j

It supports a LayerNormalization normalising the last axis only (``axis = -1`` or the input's
last axis), with constant scale and bias read by it alone, whose output is not a graph output and
is read only as the first input of MatMul nodes (or Gemm with ``transA = 0``) whose weights are
2-D float constants read by that node alone. A LayerNorm feeding several such matmuls (the Q, K,
V projections) gets one ``s`` for all of them, from the largest ``max |W_j|`` among their weights.
Other producers (an activation that would need an inserted ``Mul``) are not smoothed.

The float model computes the same function; only its quantization changes. The channel maxima come
from a calibration run of the float model (:mod:`onnxq.accuracy.smoothing`), before planning.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from onnxq.errors import ConfigError
from onnxq.graph import (
    NameAuthority,
    constant_array,
    int_attr,
    is_op,
    new_initializer,
    remove_unused_initializers,
)
from onnxq.passes.base import GraphPass, PassResult

logger = logging.getLogger(__name__)

DEFAULT_ALPHA = 0.5
#: Scales are kept within [MIN_SCALE, 1 / MIN_SCALE].
MIN_SCALE = 1e-5


def check_alpha(alpha: float) -> float:
    """``alpha`` as a float in [0, 1]; :class:`ConfigError` otherwise."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
        raise ConfigError(f"SmoothQuant alpha must be a number in [0, 1], got {alpha!r}")
    return float(alpha)


def smoothing_scales(act_max: np.ndarray, weight_max: np.ndarray, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """``s_j = act_max_j^alpha / weight_max_j^(1 - alpha)``; 1 where either is 0 or not finite."""
    a = np.asarray(act_max, np.float64)
    w = np.asarray(weight_max, np.float64)
    ok = (a > 0) & (w > 0) & np.isfinite(a) & np.isfinite(w)
    s = np.ones_like(a)
    s[ok] = a[ok] ** alpha / w[ok] ** (1.0 - alpha)
    return np.clip(s, MIN_SCALE, 1.0 / MIN_SCALE)


def weight_row_max(w: np.ndarray, trans_b: bool = False) -> np.ndarray:
    """``max |W_j|`` per input channel ``j``: rows of ``[C, N]``, columns when ``trans_b`` (``[N, C]``)."""
    return np.abs(np.asarray(w, np.float64)).max(axis=0 if trans_b else 1)


def smooth_layer_norm(
    gamma: np.ndarray, beta: np.ndarray | None, weights: list[tuple[np.ndarray, bool]], s: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None, list[np.ndarray]]:
    """``gamma / s``, ``beta / s`` and each weight (``(W, trans_b)``) with input channel ``j``
    multiplied by ``s_j``."""
    s = np.asarray(s, np.float64)
    g = np.asarray(gamma, np.float64) / s
    b = None if beta is None else np.asarray(beta, np.float64) / s
    out = [np.asarray(w, np.float64) * (s[None, :] if t else s[:, None]) for w, t in weights]
    return g, b, out


@dataclass(frozen=True)
class Candidate:
    """A LayerNormalization whose output feeds only constant-weight matmuls."""

    norm: ir.Node
    matmuls: tuple[ir.Node, ...]

    @property
    def output(self) -> str:
        name = self.norm.outputs[0].name
        assert name is not None
        return name


def _trans_b(node: ir.Node) -> bool:
    return is_op(node, "Gemm") and bool(int_attr(node, "transB", 0))


def _own_constant(value: ir.Value | None, node: ir.Node) -> np.ndarray | None:
    if value is None or any(use.node is not node for use in value.uses()) or value.is_graph_output():
        return None
    array = constant_array(value)
    if array is None or array.dtype.kind != "f" or not np.all(np.isfinite(array)):
        return None
    return array


def _why_not(norm: ir.Node) -> str | None:
    """Why ``norm`` cannot be smoothed, or None when it can."""
    out = norm.outputs[0]
    rank = out.shape.rank() if out.shape is not None else None
    axis = int_attr(norm, "axis", -1)
    if axis != -1 and (rank is None or axis != rank - 1):
        return f"normalises from axis {axis}, not the last axis only"
    scale = _own_constant(norm.inputs[1] if len(norm.inputs) > 1 else None, norm)
    if scale is None or scale.ndim != 1:
        return "its scale is not a 1-D float constant of its own"
    if len(norm.inputs) > 2 and norm.inputs[2] is not None and _own_constant(norm.inputs[2], norm) is None:
        return "its bias is not a float constant of its own"
    if out.is_graph_output() or not list(out.uses()):
        return "its output is a graph output or unused"
    for use in out.uses():
        node = use.node
        if (
            not is_op(node, "MatMul", "Gemm")
            or use.idx != 0
            or (is_op(node, "Gemm") and int_attr(node, "transA", 0))
        ):
            return f"its output is read by {node.op_type} '{node.name}', not as a matmul's input"
        w = _own_constant(node.inputs[1], node)
        if w is None or w.ndim != 2 or w.shape[1 if _trans_b(node) else 0] != scale.shape[0]:
            channels = scale.shape[0]
            return f"{node.op_type} '{node.name}' has no 2-D constant weight of its own on {channels} rows"
    return None


def smoothing_candidates(graph: ir.Graph) -> tuple[list[Candidate], list[str]]:
    """The LayerNorms of ``graph`` that can be smoothed, and a note for each one that cannot."""
    found, notes = [], []
    for node in graph:
        if not is_op(node, "LayerNormalization"):
            continue
        reason = _why_not(node)
        if reason is not None:
            notes.append(f"smooth-quant: LayerNormalization '{node.name}' not smoothed: {reason}")
            continue
        readers = {id(u.node): u.node for u in node.outputs[0].uses()}
        found.append(Candidate(node, tuple(readers.values())))
    return found, notes


class SmoothQuant(GraphPass):
    """Fold SmoothQuant's scales into each smoothable LayerNorm and the matmuls it feeds.

    ``act_max`` gives ``max |X_j|`` per channel by LayerNorm output name (from calibration); a
    LayerNorm without an entry is left alone."""

    name = "smooth-quant"

    def __init__(self, act_max: Mapping[str, np.ndarray], alpha: float = DEFAULT_ALPHA) -> None:
        super().__init__()
        self.act_max = dict(act_max)
        self.alpha = check_alpha(alpha)

    def call(self, model: ir.Model) -> PassResult:
        graph = model.graph
        candidates, notes = smoothing_candidates(graph)
        names = NameAuthority(graph)
        count = 0
        for cand in candidates:
            act = self.act_max.get(cand.output)
            if act is None:
                continue
            norm = cand.norm
            gamma = constant_array(norm.inputs[1])
            has_bias = len(norm.inputs) > 2 and norm.inputs[2] is not None
            beta = constant_array(norm.inputs[2]) if has_bias else None
            weights = [(constant_array(m.inputs[1]), _trans_b(m)) for m in cand.matmuls]
            w_max = np.max([weight_row_max(w, t) for w, t in weights], axis=0)
            s = smoothing_scales(act, w_max, self.alpha)
            g, b, smoothed = smooth_layer_norm(gamma, beta, weights, s)
            dtype = gamma.dtype
            norm.replace_input_with(
                1, new_initializer(graph, g.astype(dtype), names, f"{norm.inputs[1].name}_smooth")
            )
            if b is not None:
                norm.replace_input_with(
                    2, new_initializer(graph, b.astype(dtype), names, f"{norm.inputs[2].name}_smooth")
                )
            for m, w in zip(cand.matmuls, smoothed, strict=True):
                hint = f"{m.inputs[1].name}_smooth"
                m.replace_input_with(1, new_initializer(graph, w.astype(dtype), names, hint))
            count += 1
        remove_unused_initializers(graph)
        logger.info("smooth-quant: %d LayerNorm(s) smoothed (alpha %.2f)", count, self.alpha)
        notes.append(
            f"smooth-quant: {count} LayerNorm(s) and the matmuls they feed smoothed (alpha {self.alpha:g})"
        )
        return PassResult(model, count, tuple(notes))


__all__ = [
    "DEFAULT_ALPHA",
    "Candidate",
    "SmoothQuant",
    "check_alpha",
    "smooth_layer_norm",
    "smoothing_candidates",
    "smoothing_scales",
    "weight_row_max",
]
