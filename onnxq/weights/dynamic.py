"""The weights of a dynamically quantized model (pure numpy, no graph edits).

A weight is quantized per channel — the channel index being the product of its ``channel_axes``,
e.g. ``(0, 1)`` for a recurrent weight ``[directions, gates * hidden, inputs]``, one scale per
direction and gate row — or per tensor (no channel axes), with round to nearest
(:func:`onnxq.weights.rtn.quantize_weight`): symmetric int8 ``q = clamp(round(w / s), -127, 127)``,
``s = max|w_c| / 127`` per channel ``c``.

A Gemm ``Y = alpha * A * B' + beta * C`` (``B' = B`` or ``B^T``) becomes the matmul
``Y = A * W + bias`` that ``MatMulInteger`` computes, with ``W = alpha * B'`` (``[K, N]``) and
``bias = beta * C`` (:func:`gemm_as_matmul`): ``alpha`` is folded into the weight before it is
rounded, so it costs nothing at run time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from onnxq.qconfig import QSpec
from onnxq.scheme import PER_TENSOR, PerChannel
from onnxq.weights.rtn import quantize_weight


@dataclass(frozen=True, eq=False)
class ChannelWeight:
    """An integer weight and its parameters: ``scale`` and ``zero_point`` hold one value per
    channel, shaped like the weight's channel axes (``()`` per tensor)."""

    values: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    channel_axes: tuple[int, ...]

    def dequantize(self) -> np.ndarray:
        """The float weight the integers stand for."""
        shape = [1] * self.values.ndim
        for axis, n in zip(self.channel_axes, self.scale.shape, strict=True):
            shape[axis] = n
        zp = self.zero_point.astype(np.float32).reshape(shape)
        return ((self.values.astype(np.float32) - zp) * self.scale.reshape(shape)).astype(np.float32)


def quantize_channels(w: np.ndarray, spec: QSpec, channel_axes: tuple[int, ...]) -> ChannelWeight:
    """``w`` quantized as ``spec`` says, one scale per channel of ``channel_axes`` (adjacent axes,
    or none: per tensor)."""
    w = np.asarray(w, dtype=np.float32)
    if not channel_axes:
        values, qp = quantize_weight(w, spec, PER_TENSOR)
        return ChannelWeight(values, np.asarray(qp.scale), np.asarray(qp.zero_point), ())
    first, last = channel_axes[0], channel_axes[-1]
    if list(channel_axes) != list(range(first, last + 1)):
        raise ValueError(f"channel axes must be adjacent, got {channel_axes}")
    channels = w.shape[first : last + 1]
    merged = w.reshape(*w.shape[:first], math.prod(channels), *w.shape[last + 1 :])
    values, qp = quantize_weight(merged, spec, PerChannel(first))
    return ChannelWeight(
        values.reshape(w.shape), np.asarray(qp.scale).reshape(channels),
        np.asarray(qp.zero_point).reshape(channels), tuple(channel_axes),
    )  # fmt: skip


def gemm_as_matmul(
    b: np.ndarray, c: np.ndarray | None, alpha: float, beta: float, trans_b: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(W [K, N], bias)`` with ``alpha * A * B' + beta * C == A * W + bias`` (module docstring);
    ``bias`` is None without ``C`` (or with ``beta == 0``)."""
    weight = np.asarray(b, np.float32).T if trans_b else np.asarray(b, np.float32)
    if alpha != 1.0:
        weight = (weight * np.float32(alpha)).astype(np.float32)
    if c is None or beta == 0.0:
        return np.ascontiguousarray(weight), None
    bias = np.asarray(c, np.float32)
    if beta != 1.0:
        bias = (bias * np.float32(beta)).astype(np.float32)
    return np.ascontiguousarray(weight), bias


__all__ = ["ChannelWeight", "gemm_as_matmul", "quantize_channels"]
