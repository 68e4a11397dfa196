"""GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative
Pre-trained Transformers"): weights rounded one input column at a time, each rounding error
spread over the columns not yet rounded so that the layer's output on the calibration inputs moves
as little as possible.

For a layer ``y = x W^T`` with ``W [N, K]`` (rows: output channels; columns: the reduction axis)
and calibration input rows ``X [rows, K]``, GPTQ minimises ``||X W^T - X Q^T||^2`` row by row,
whose Hessian is ``H = 2 X^T X / rows`` (:mod:`onnxq.weights.hessian` accumulates it). Then:

1. Dead columns: an input that is always 0 (``H[k, k] = 0``) gets ``H[k, k] = 1`` and
   ``W[:, k] = 0``.
2. Dampening: ``H += percdamp * mean(diag(H)) * I`` (``percdamp = 0.01``); if ``H`` is still not
   positive definite, the dampening is multiplied by 10 (up to 4 times) and a warning says so.
3. ``U = cholesky(H^-1)``, upper (``H^-1 = U^T U``). Row ``k`` of ``U`` is the row ``k`` of the
   inverse Hessian of the columns ``k..K-1`` scaled by ``1 / sqrt([H_F^-1]_kk)``: the OBS update.
4. Columns in their natural order (no act-order: the blocks stay contiguous, so the block layout
   and the formats are RTN's). For column ``k``::

       q_k  = clip(round_half_even(W[:, k] / s + z), qmin, qmax)      (RTN's rounding)
       e_k  = (W[:, k] - (q_k - z) * s) / U[k, k]
       W[:, k+1:] -= e_k U[k, k+1:]

   where ``s, z`` are the parameters of ``k``'s block: for 4-bit per-block weights they are
   computed as RTN computes them (:func:`onnxq.weights.rtn.weight_qparams`) from the block's
   columns of the *current* ``W`` — every error of the columns before the block already added — at
   the moment the block's first column is rounded (the lazy choice of the paper's code: the scale
   sees the weights it will actually round); per-channel (int8) parameters come from the
   original ``W`` once. With ``mse`` the block's scale is the clipping ratio of least squared
   rounding error of those current columns (:mod:`onnxq.weights.clip_search`) instead of their
   min-max range.
5. Lazy batches (the paper's "lazy batch updates"): columns are processed in batches of 128 (a
   multiple of the block size); within a batch the updates go to the batch's columns only, and
   ``W[:, end:] -= E U[batch, end:]`` applies the batch's errors ``E`` to the later columns at
   once. This is exact: the same result as updating every later column after every column.

By default every layer uses the Hessian of the fp32 model's inputs (one calibration run for all
layers); ``sequential=True`` (:mod:`onnxq.weights.sequential`) feeds each layer the outputs of
the layers quantized before it, as the paper does, at one calibration run per stage of layers.
The arithmetic is in float64; each column is rounded in float32 like RTN. The output is RTN's:
integer weights and their :class:`~onnxq.qparams.QParams`, so every format stores it unchanged.
"""

from __future__ import annotations

import logging

import numpy as np

from onnxq.qconfig import QSpec
from onnxq.qparams import QParams, dequantize, quantize
from onnxq.scheme import Granularity, PerBlock, PerChannel
from onnxq.weights.registry import QuantizedTensor, WeightRequest, register_weight_method
from onnxq.weights.rtn import quantize_weight, weight_qparams

logger = logging.getLogger(__name__)

PERCDAMP = 0.01
LAZY_BATCH = 128
MAX_DAMP_RETRIES = 4


def prepared_hessian(
    hessian: np.ndarray, w: np.ndarray, percdamp: float = PERCDAMP
) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1-3: ``(U, W)``: the upper Cholesky factor of the dampened inverse Hessian and ``w``
    (float64) with its dead columns zeroed."""
    h = np.array(hessian, dtype=np.float64)
    w = np.array(w, dtype=np.float64)
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    damp = percdamp * float(np.mean(np.diag(h)))
    for attempt in range(MAX_DAMP_RETRIES + 1):
        try:
            damped = h + damp * np.eye(len(h))
            lower = np.linalg.cholesky(damped)
            inv_lower = np.linalg.inv(lower)
            return np.linalg.cholesky(inv_lower.T @ inv_lower).T, w
        except np.linalg.LinAlgError:
            if attempt == MAX_DAMP_RETRIES:
                raise
            damp = max(damp, 1e-12) * 10
            logger.warning("gptq: Hessian not positive definite; dampening raised to %.3g", damp)
    raise AssertionError("unreachable")


def gptq_quantize(
    w: np.ndarray,
    hessian: np.ndarray,
    spec: QSpec,
    granularity: Granularity,
    *,
    percdamp: float = PERCDAMP,
    lazy_batch: int = LAZY_BATCH,
    mse: bool = False,
) -> QuantizedTensor:
    """GPTQ of ``w [N, K]`` with the input Hessian ``hessian [K, K]`` (see the module docstring).

    ``granularity`` is ``PerBlock(1, block_size)`` (blocks along K) or ``PerChannel(0)``.
    Returns the integer weight ``[N, K]`` and its parameters, laid out as RTN lays them out.
    ``mse``: scales by least squared error (step 4).
    """
    k = w.shape[1]
    u, work = prepared_hessian(hessian, w, percdamp)
    block = granularity.block_size if isinstance(granularity, PerBlock) else None
    if block is not None:
        assert granularity.axis == 1
        lazy_batch = block * max(1, lazy_batch // block)  # a block never spans two batches
        column_qp: QParams | None = None
        scales, zero_points = [], []
    else:
        assert isinstance(granularity, PerChannel) and granularity.axis == 0
        column_qp = weight_qparams(np.asarray(w, np.float32), spec, granularity, mse=mse)
    values = []
    for start in range(0, k, lazy_batch):
        end = min(start + lazy_batch, k)
        batch = work[:, start:end].copy()
        errors = np.zeros_like(batch)
        for i in range(end - start):
            col = start + i
            if block is not None and col % block == 0:
                cols = batch[:, i : i + block].astype(np.float32)
                column_qp = weight_qparams(cols, spec, PerBlock(1, block), mse=mse)
                scales.append(column_qp.scale)
                zero_points.append(column_qp.zero_point)
            assert column_qp is not None
            q = quantize(batch[:, i : i + 1].astype(np.float32), column_qp)
            err = (batch[:, i] - dequantize(q, column_qp)[:, 0].astype(np.float64)) / u[col, col]
            batch[:, i:] -= np.outer(err, u[col, col:end])
            errors[:, i] = err
            values.append(q)
        work[:, end:] -= errors @ u[start:end, end:]
    q_all = np.concatenate(values, axis=1)
    if block is None:
        assert column_qp is not None
        return QuantizedTensor(q_all, column_qp)
    qp = QParams(np.concatenate(scales, axis=1), np.concatenate(zero_points, axis=1), PerBlock(1, block))
    return QuantizedTensor(q_all, qp)


def reduction_axis(granularity: Granularity) -> int | None:
    """The axis of a 2-D weight that the op sums over (the Hessian's axis), from its granularity."""
    if isinstance(granularity, PerBlock):
        return granularity.axis
    if isinstance(granularity, PerChannel) and granularity.axis in (0, 1):
        return 1 - granularity.axis
    return None


@register_weight_method("gptq", needs_data=True)
def gptq(request: WeightRequest) -> QuantizedTensor:
    """GPTQ for a 2-D weight with its input Hessian; round to nearest for any other (logged)."""
    w, h, g = request.weight, request.hessian, request.granularity
    axis = reduction_axis(g) if w.ndim == 2 else None
    usable = h is not None and axis is not None and h.shape == (w.shape[axis],) * 2 and np.isfinite(w).all()
    if not usable:
        logger.info("gptq: no input Hessian for %s %r: rounded to nearest", request.op_type, request.node)
        values, qp = quantize_weight(w, request.spec, g, mse=request.mse_scales)
        return QuantizedTensor(values, qp)
    assert h is not None and axis is not None
    rows = w if axis == 1 else w.T  # [N, K]
    inner = PerBlock(1, g.block_size) if isinstance(g, PerBlock) else PerChannel(0)
    q = gptq_quantize(rows, h, request.spec, inner, mse=request.mse_scales)
    if axis == 1:
        return q
    qp = q.qparams
    layout = PerBlock(0, g.block_size) if isinstance(g, PerBlock) else PerChannel(1)
    scale = qp.scale.T if isinstance(g, PerBlock) else qp.scale
    zero_point = qp.zero_point.T if isinstance(g, PerBlock) else qp.zero_point
    return QuantizedTensor(np.ascontiguousarray(q.values.T), QParams(scale, zero_point, layout))


__all__ = ["gptq", "gptq_quantize", "prepared_hessian", "reduction_axis"]
