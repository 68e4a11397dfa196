"""Round to nearest (``rtn``): the data-free weight method, and the range statistics it uses.

For each tensor, channel or block the observer the weight QSpec names gives the range
(``minmax``: ``max |W|`` for symmetric specs), :func:`onnxq.qparams.choose_qparams` the scale and
zero point, and each weight is rounded to the nearest level::

    scale_c = max_i |W[c, i]| / 127        (int8 symmetric: narrow range [-127, 127], zero point 0)
    Wq[c, i] = clip(round_half_even(W[c, i] / scale_c), -127, 127)

Per block, the blocks of ``block_size`` consecutive elements along the block axis are the
observer's channels: the weight is viewed as ``(blocks, block_size)`` rows (a last short block
padded with NaN, which observers ignore) and the per-row parameters are laid out in
DequantizeLinear's block shape. A weight with no finite value gets scale 1 and zero point 0, and
non-finite weights are clamped into the spec's range (symmetric int8 stays within [-127, 127]).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from onnxq.calibration.observers import make_observer
from onnxq.qconfig import QSpec
from onnxq.qparams import QParams, qrange, quantize
from onnxq.scheme import Granularity, PerBlock, PerChannel, qdtype
from onnxq.weights.clip_search import mse_row_qparams
from onnxq.weights.registry import QuantizedTensor, WeightRequest, register_weight_method


def weight_qparams(w: np.ndarray, spec: QSpec, granularity: Granularity, *, mse: bool = False) -> QParams:
    """The parameters of ``w`` for ``granularity`` (axis resolved) from the spec's observer, or
    with ``mse`` (per block or channel) the clipping ratio of least squared rounding error
    (:mod:`onnxq.weights.clip_search`)."""
    w = np.asarray(w, dtype=np.float32)
    if isinstance(granularity, PerBlock):
        assert granularity.axis is not None
        rows, lay_out = _block_rows(w, granularity.axis, granularity.block_size)
        per_row = mse_row_qparams(rows, spec) if mse else _observed(rows, spec, 0)
        return QParams(lay_out(per_row.scale), lay_out(per_row.zero_point), granularity)
    axis = granularity.axis if isinstance(granularity, PerChannel) else None
    if mse and axis is not None:
        per_row = mse_row_qparams(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1), spec)
        return QParams(per_row.scale, per_row.zero_point, granularity)
    return _observed(w, spec, axis)


def _observed(w: np.ndarray, spec: QSpec, axis: int | None) -> QParams:
    observer = make_observer(spec.observer, axis, **spec.observer_args)
    observer.update(w)
    if observer.reached:
        return observer.qparams(spec.dtype, spec.symmetric, spec.reduce_range)
    zp_dtype = qdtype(spec.dtype).numpy  # every value NaN/Inf: nothing to scale by, all zeros
    if axis is None:
        return QParams(np.float32(1.0), np.zeros((), zp_dtype))
    n = w.shape[axis]
    return QParams(np.ones(n, np.float32), np.zeros(n, zp_dtype), PerChannel(axis))


def _block_rows(
    w: np.ndarray, axis: int, block_size: int
) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """``w`` as ``(rows, block_size)`` blocks, and the function that lays one value per row out
    in DequantizeLinear's block shape (``w``'s shape with ``ceil(n / block_size)`` at ``axis``)."""
    moved = np.moveaxis(w, axis, -1)  # rows enumerate (the other axes..., block index)
    n = moved.shape[-1]
    blocks = math.ceil(n / block_size)
    if blocks * block_size != n:
        pad = np.full((*moved.shape[:-1], blocks * block_size - n), np.nan, np.float32)
        moved = np.concatenate([moved, pad], axis=-1)

    def lay_out(per_row: np.ndarray) -> np.ndarray:
        return np.moveaxis(per_row.reshape(*moved.shape[:-1], blocks), -1, axis)

    return moved.reshape(-1, block_size), lay_out


def quantize_weight(
    w: np.ndarray, spec: QSpec, granularity: Granularity, *, mse: bool = False
) -> tuple[np.ndarray, QParams]:
    """``(integer weight, its QParams)`` for the float weight ``w``, rounded to nearest (``mse``:
    see :func:`weight_qparams`)."""
    qp = weight_qparams(w, spec, granularity, mse=mse)
    q = quantize(np.asarray(w, dtype=np.float32), qp)
    qmin, qmax = qrange(spec.dtype, spec.symmetric, spec.reduce_range)
    if not np.isfinite(w).all():  # NaN saturates to the dtype's minimum: keep the spec's range
        q = np.clip(q.astype(np.int32), qmin, qmax).astype(q.dtype)
    return q, qp


@register_weight_method("rtn")
def round_to_nearest(request: WeightRequest) -> QuantizedTensor:
    """Round to nearest with the parameters of :func:`weight_qparams` (least-error scales with
    ``request.mse_scales``)."""
    values, qp = quantize_weight(request.weight, request.spec, request.granularity, mse=request.mse_scales)
    return QuantizedTensor(values, qp)


__all__ = ["quantize_weight", "round_to_nearest", "weight_qparams"]
