"""Per-layer error of a quantized model against its fp32 model: the Numeric Suite of onnxq.

:func:`compare` matches every quantized tensor of a QDQ model (onnxq's or another tool's) to the
fp32 model's tensor through the Q/DQ structure (:mod:`~onnxq.compare.matching`), runs both over
the data one run at a time (:mod:`~onnxq.compare.runner`), and reports for each the SQNR, cosine
and max abs error (:mod:`~onnxq.compare.metrics`), accumulated and introduced by that layer alone,
with its ranges and histogram (:mod:`~onnxq.compare.report`); :mod:`~onnxq.compare.writers` saves
the report as JSON and as a self-contained HTML page.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import numpy as np
import onnx
import onnx_ir as ir

from onnxq.compare.matching import TensorMatch, check_interfaces, match_tensors
from onnxq.compare.report import ComparisonReport, ErrorMetrics, HistogramData, LayerError, WeightRange
from onnxq.compare.runner import TensorStats, accumulate
from onnxq.errors import OnnxqError
from onnxq.io import load_model

logger = logging.getLogger(__name__)

ModelLike = str | os.PathLike[str] | onnx.ModelProto | ir.Model


def compare(
    float_model: ModelLike, quantized_model: ModelLike, data: Iterable[object], *, limit: int | None = None
) -> ComparisonReport:
    """Per-layer error of ``quantized_model`` (QDQ) against ``float_model`` on ``data``.

    Args:
        float_model, quantized_model: Paths, ``onnx.ModelProto``s or loaded models with the same graph inputs
            and outputs.
        data: Batches as calibration takes them (:func:`onnxq.load_calibration_data`, dicts of
            arrays, ...).
        limit: Compare at most this many samples.

    Raises:
        OnnxqError: The models' inputs or outputs differ, or the quantized model has no
            QuantizeLinear matching a tensor of the fp32 model.
    """
    if limit is not None and limit < 1:
        raise OnnxqError(f"limit must be at least 1, got {limit}")
    fp32 = load_model(float_model, what="float model")
    qdq = load_model(quantized_model, what="quantized model")
    check_interfaces(fp32, qdq)
    matches, unmatched = match_tensors(fp32, qdq)
    if not matches:
        raise OnnxqError("the quantized model has no QuantizeLinear on a tensor of the float model")
    if unmatched:
        logger.info(
            "%d quantized tensor(s) have no fp32 counterpart: %s", len(unmatched), ", ".join(unmatched)
        )
    stats, samples = accumulate(fp32, qdq, matches, data, limit)
    return ComparisonReport(samples, tuple(_layer(s) for s in stats), tuple(unmatched))


def _metrics(stats: object) -> ErrorMetrics:
    return ErrorMetrics(stats.sqnr_db, stats.cosine, stats.max_abs)  # type: ignore[attr-defined]


def _weight(w: object) -> WeightRange:
    values = w.values  # type: ignore[attr-defined]
    quant = w.quantization  # type: ignore[attr-defined]
    extent = (float(np.min(values)), float(np.max(values))) if values.size else (0.0, 0.0)
    return WeightRange(w.name, quant.range, extent, quant.scale.size > 1)  # type: ignore[attr-defined]


def _layer(s: TensorStats) -> LayerError:
    m: TensorMatch = s.match
    h = s.histogram
    return LayerError(
        tensor=m.name,
        op_type=m.op_type,
        dequantized=m.dequantized,
        activation_range=m.quantization.range,
        accumulated=_metrics(s.accumulated),
        introduced=_metrics(s.introduced),
        histogram=HistogramData(h.lo, h.hi, tuple(int(c) for c in h.counts), h.below, h.above),
        weights=tuple(_weight(w) for w in m.weights),
    )


__all__ = ["ComparisonReport", "ErrorMetrics", "HistogramData", "LayerError", "WeightRange", "compare"]
