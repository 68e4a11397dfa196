"""Cross-layer equalisation (CLE, Nagel et al. 2019, "Data-Free Quantization").

Two Convs in a row, ``y = Conv2(f(Conv1(x)))`` with ``f`` the identity or ReLU, compute the same
when output channel ``i`` of Conv1 is divided by ``s_i > 0`` and input channel ``i`` of Conv2 is
multiplied by it, because ``f`` is positively homogeneous (``relu(z / s) = relu(z) / s``)::

    W1'[i]        = W1[i] / s_i          b1'[i] = b1[i] / s_i        (Conv1's output channel i)
    W2'[:, i]     = W2[:, i] * s_i                                   (Conv2's input channel i)

With ``r1_i = max |W1[i]|`` and ``r2_i = max |W2[:, i]|`` (the ranges the two weights give channel
``i``), the scale that gives both the same range, ``sqrt(r1_i * r2_i)``, is::

    s_i = sqrt(r1_i * r2_i) / r2_i                  (s_i = 1 where r1_i or r2_i is 0)

Per-tensor weight quantization then wastes fewer levels on the channels with small ranges (the
depthwise convolutions of MobileNet-style models, whose channels' ranges differ by orders of
magnitude, gain most). In a chain ``Conv1 -> Conv2 -> Conv3`` equalising the second pair changes
Conv2's ranges again, so every pair is equalised in turn until the scales converge
(:func:`equalize_layers`).

For a grouped Conv2 (``g`` groups, weight ``[Cout, C/g, k...]``) input channel ``i`` is column
``i mod (C/g)`` of the ``Cout/g`` rows of group ``i div (C/g)``; a depthwise Conv2 is the case
``C/g = 1``. Conv1's output channel is always its weight's axis 0, whatever its groups.

A pair is equalised only where this is exact: ReLU or nothing between the two Convs (ReLU6 /
``Clip`` is refused: its upper bound would have to become ``6 / s_i``, one bound per channel, which
``Clip`` cannot express; replacing it with ReLU would change the model), Conv1's output (and the
ReLU's) read by that chain only and not a graph output, both weights (and Conv1's bias) constant,
float and read by that node only. Everything else is left as it is and, when it came close,
reported. The pass runs on the float model after BatchNorm folding, before planning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from onnxq.graph import (
    NameAuthority,
    constant_array,
    int_attr,
    is_op,
    new_initializer,
    remove_unused_initializers,
    sole_consumer,
)
from onnxq.passes.base import GraphPass, PassResult

logger = logging.getLogger(__name__)

#: Equalisation stops when every scale of a sweep is within this factor of 1.
TOLERANCE = 1e-6
MAX_SWEEPS = 100


@dataclass(frozen=True)
class ConvLayer:
    """A Conv weight ``[Cout, Cin/groups, k...]``, its bias (None: none) and its group count."""

    weight: np.ndarray
    bias: np.ndarray | None
    groups: int = 1


def output_ranges(w1: np.ndarray) -> np.ndarray:
    """``r1_i = max |W1[i]|`` per output channel (axis 0)."""
    return np.abs(w1).reshape(w1.shape[0], -1).max(axis=1)


def _by_input_channel(w2: np.ndarray, groups: int) -> np.ndarray:
    """``w2`` viewed as ``[groups, Cout/groups, Cin/groups, k...]``: input channel ``i`` is ``[i div
    (Cin/groups), :, i mod (Cin/groups)]``."""
    cout, cin_g = w2.shape[0], w2.shape[1]
    if cout % groups:
        raise ValueError(f"{cout} output channels do not divide into {groups} groups")
    return w2.reshape(groups, cout // groups, cin_g, *w2.shape[2:])


def input_ranges(w2: np.ndarray, groups: int = 1) -> np.ndarray:
    """``r2_i = max |W2[:, i]|`` per input channel ``i`` (``groups * Cin/groups`` of them)."""
    view = np.abs(_by_input_channel(w2, groups))
    view = np.moveaxis(view, 2, 1)  # [groups, Cin/groups, Cout/groups, k...]
    return view.reshape(view.shape[0] * view.shape[1], -1).max(axis=1)


def equalization_scales(r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """``s_i = sqrt(r1_i * r2_i) / r2_i``, 1 where either range is 0 (or not finite)."""
    r1, r2 = np.asarray(r1, np.float64), np.asarray(r2, np.float64)
    ok = (r1 > 0) & (r2 > 0) & np.isfinite(r1) & np.isfinite(r2)
    s = np.ones_like(r1)
    s[ok] = np.sqrt(r1[ok] * r2[ok]) / r2[ok]
    return s


def scale_pair(first: ConvLayer, second: ConvLayer, s: np.ndarray) -> tuple[ConvLayer, ConvLayer]:
    """Divide ``first``'s output channels by ``s`` and multiply ``second``'s input channels by it."""
    s = np.asarray(s, np.float64)
    w1 = first.weight / s.reshape((-1,) + (1,) * (first.weight.ndim - 1))
    b1 = None if first.bias is None else first.bias / s
    view = _by_input_channel(second.weight.astype(np.float64), second.groups)
    per_group = s.reshape(second.groups, 1, view.shape[2], *([1] * (view.ndim - 3)))
    w2 = (view * per_group).reshape(second.weight.shape)
    return ConvLayer(w1, b1, first.groups), ConvLayer(w2, second.bias, second.groups)


def equalize_layers(
    layers: list[ConvLayer],
    pairs: list[tuple[int, int]],
    tol: float = TOLERANCE,
    max_sweeps: int = MAX_SWEEPS,
) -> tuple[list[ConvLayer], int]:
    """Equalise every ``(first, second)`` pair of ``layers`` (indices) in turn, sweep after sweep,
    until every scale of a sweep is within ``tol`` of 1; return the layers (in float64) and the
    number of sweeps. Scales compose: the product over the sweeps is what the model gets."""
    out = [
        ConvLayer(
            np.asarray(x.weight, np.float64),
            None if x.bias is None else np.asarray(x.bias, np.float64),
            x.groups,
        )
        for x in layers
    ]
    for sweep in range(1, max_sweeps + 1):
        worst = 0.0
        for i, j in pairs:
            s = equalization_scales(output_ranges(out[i].weight), input_ranges(out[j].weight, out[j].groups))
            worst = max(worst, float(np.max(np.abs(np.log(s)), initial=0.0)))
            out[i], out[j] = scale_pair(out[i], out[j], s)
        if worst <= tol:
            return out, sweep
    return out, max_sweeps


def _only_reader(value: ir.Value | None, node: ir.Node) -> bool:
    return value is not None and all(use.node is node for use in value.uses()) and not value.is_graph_output()


class EqualizeConvPairs(GraphPass):
    """Cross-layer equalisation of every Conv -> (ReLU) -> Conv pair where it is exact."""

    name = "equalize"

    def call(self, model: ir.Model) -> PassResult:
        graph = model.graph
        notes: list[str] = []
        index: dict[int, int] = {}
        convs: list[ir.Node] = []
        pairs: list[tuple[int, int]] = []
        for node in graph:
            if not is_op(node, "Conv"):
                continue
            second = self._check(node, notes)
            if second is None:
                continue
            for conv in (node, second):
                if id(conv) not in index:
                    index[id(conv)] = len(convs)
                    convs.append(conv)
            pairs.append((index[id(node)], index[id(second)]))
        if not pairs:
            return PassResult(model, 0, tuple(notes))
        layers = [self._layer(conv) for conv in convs]
        equalized, sweeps = equalize_layers(layers, pairs)
        names = NameAuthority(graph)
        for conv, before, after in zip(convs, layers, equalized, strict=True):
            dtype = before.weight.dtype
            hint = conv.inputs[1].name or f"{conv.name}_weight"
            conv.replace_input_with(
                1, new_initializer(graph, after.weight.astype(dtype), names, f"{hint}_cle")
            )
            if after.bias is not None:
                hint = conv.inputs[2].name or f"{conv.name}_bias"
                conv.replace_input_with(
                    2, new_initializer(graph, after.bias.astype(dtype), names, f"{hint}_cle")
                )
        remove_unused_initializers(graph)
        logger.info("equalize: %d Conv pair(s) equalised in %d sweep(s)", len(pairs), sweeps)
        notes.append(f"equalize: {len(pairs)} Conv pair(s) equalised ({sweeps} sweep(s))")
        return PassResult(model, len(pairs), tuple(notes))

    @staticmethod
    def _layer(conv: ir.Node) -> ConvLayer:
        w = constant_array(conv.inputs[1])
        assert w is not None
        b = constant_array(conv.inputs[2]) if len(conv.inputs) > 2 and conv.inputs[2] is not None else None
        return ConvLayer(w, b, int_attr(conv, "group", 1))

    @staticmethod
    def _check(first: ir.Node, notes: list[str]) -> ir.Node | None:
        """The Conv that ``first`` pairs with, or None (with a note when the pair came close)."""
        out = first.outputs[0]
        nxt = sole_consumer(out)
        between = None
        if is_op(nxt, "Relu", "Clip"):
            between, nxt = nxt, sole_consumer(nxt.outputs[0])
        if (
            not is_op(nxt, "Conv")
            or nxt is None
            or nxt is first
            or nxt.inputs[0] is not (out if between is None else between.outputs[0])
        ):
            return None
        where = f"Conv '{first.name}' -> Conv '{nxt.name}'"
        if between is not None and is_op(between, "Clip"):
            notes.append(f"{where} not equalised: Clip '{between.name}' between them (a bound per channel)")
            return None
        weights = [(first.inputs[1], first), (nxt.inputs[1], nxt)]
        if len(first.inputs) > 2 and first.inputs[2] is not None:
            weights.append((first.inputs[2], first))
        for value, reader in weights:
            array = constant_array(value)
            if array is None or array.dtype.kind != "f" or not np.all(np.isfinite(array)):
                notes.append(f"{where} not equalised: '{value.name}' is not a finite float constant")
                return None
            if not _only_reader(value, reader):
                notes.append(f"{where} not equalised: '{value.name}' has other readers")
                return None
        w1, w2 = constant_array(first.inputs[1]), constant_array(nxt.inputs[1])
        assert w1 is not None and w2 is not None
        if w1.shape[0] != w2.shape[1] * int_attr(nxt, "group", 1):
            notes.append(f"{where} not equalised: {w1.shape[0]} output channels feed {w2.shape[1]} per group")
            return None
        return nxt


__all__ = [
    "ConvLayer",
    "EqualizeConvPairs",
    "equalization_scales",
    "equalize_layers",
    "input_ranges",
    "output_ranges",
    "scale_pair",
]
