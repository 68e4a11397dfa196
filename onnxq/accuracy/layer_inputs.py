"""A bounded sample of each layer's input rows, kept while calibrating (for AdaRound).

:class:`InputReservoir` keeps at most ``capacity`` rows of a layer's input as the layer's matmul
sees them: a Gemm/MatMul's rows (the last axis), a Conv's input patches ``[C * kh * kw]`` (in the
order of its flattened weight, zero padding included). Reservoir sampling (Vitter's algorithm R)
makes every row seen so far equally likely to be kept, in fixed memory ``capacity x K``; only the
rows kept are cut out of each batch. It is fed by the calibration engine through
:func:`onnxq.accuracy.input_means.with_means`, in the same runs as the plan's observers.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxq.graph import int_attr, is_op


class InputReservoir:
    """At most ``capacity`` input rows of ``node`` (Conv, Gemm or MatMul), uniformly sampled."""

    def __init__(self, node: ir.Node, kernel: tuple[int, ...], capacity: int, seed: int = 0) -> None:
        self.conv = is_op(node, "Conv")
        self.kernel = kernel
        self.strides = _ints(node, "strides", len(kernel))
        self.dilations = _ints(node, "dilations", len(kernel))
        pads = node.attributes.get("pads")
        self.pads = tuple(pads.as_ints()) if pads is not None else (0,) * (2 * len(kernel))
        self.capacity = capacity
        self.rng = np.random.default_rng(seed)
        self.rows: np.ndarray | None = None
        self.seen = 0
        self.nonfinite_count = 0

    def _positions(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        if not self.conv:
            return x.reshape(-1, x.shape[-1]), 0
        if x.ndim != 4:
            raise ValueError("only 2-D convolutions keep input patches")
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.strides, self.dilations
        top, left, bottom, right = self.pads
        padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
        span = ((kh - 1) * dh + 1, (kw - 1) * dw + 1)
        win = np.lib.stride_tricks.sliding_window_view(padded, span, (2, 3))
        win = win[:, :, ::sh, ::sw, ::dh, ::dw]  # [B, C, Ho, Wo, kh, kw]
        return win, int(np.prod(win.shape[0:1]) * np.prod(win.shape[2:4]))

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x)
        view, n = self._positions(x)
        n = n or len(view)
        t = self.seen + np.arange(n)
        slots = np.where(t < self.capacity, t, self.rng.integers(0, t + 1))
        keep = np.nonzero(slots < self.capacity)[0]
        self.seen += n
        if self.conv:
            ho, wo = view.shape[2:4]
            bi, rest = np.divmod(keep, ho * wo)
            hi, wi = np.divmod(rest, wo)
            rows = view[bi, :, hi, wi].reshape(len(keep), -1)
        else:
            rows = view[keep]
        rows = rows.astype(np.float32)
        finite = np.isfinite(rows)
        self.nonfinite_count += int(finite.size - finite.sum())
        if self.rows is None:
            self.rows = np.zeros((self.capacity, rows.shape[1]), np.float32)
        self.rows[slots[keep]] = np.where(finite, rows, 0)  # a repeated slot keeps the later row

    @property
    def data(self) -> np.ndarray:
        """The rows kept, ``[min(seen, capacity), K]``."""
        if self.rows is None:
            raise ValueError("no value observed")
        return self.rows[: min(self.seen, self.capacity)]

    @property
    def reached(self) -> bool:
        return self.rows is not None and self.seen > 0


def _ints(node: ir.Node, name: str, n: int) -> tuple[int, ...]:
    attr = node.attributes.get(name)
    return tuple(attr.as_ints()) if attr is not None else (1,) * n


def reservoir_for(
    node: ir.Node, weight_shape: tuple[int, ...], capacity: int, seed: int = 0
) -> InputReservoir | None:
    """A reservoir for ``node``'s input, or None where AdaRound does not apply to it."""
    if is_op(node, "Conv"):
        if int_attr(node, "group", 1) != 1 or len(weight_shape) != 4:
            return None
        auto_pad = node.attributes.get("auto_pad")
        if auto_pad is not None and auto_pad.as_string() not in ("NOTSET", ""):
            return None
        return InputReservoir(node, tuple(weight_shape[2:]), capacity, seed)
    if (is_op(node, "Gemm") and not int_attr(node, "transA", 0)) or is_op(node, "MatMul"):
        return InputReservoir(node, (), capacity, seed) if len(weight_shape) == 2 else None
    return None


__all__ = ["InputReservoir", "reservoir_for"]
