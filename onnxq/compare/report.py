"""The result of ``onnxq compare``: one :class:`LayerError` per quantized tensor, in graph order.

Infinite SQNRs (a tensor reproduced exactly) are ``math.inf`` here and ``null`` in the JSON form
(JSON has no infinity); :meth:`ComparisonReport.ranked` puts them last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: Version of the JSON form (``schemas/compare.schema.json``).
REPORT_VERSION = 1


@dataclass(frozen=True)
class ErrorMetrics:
    """SQNR (dB), cosine similarity and max abs error of a quantized tensor against fp32."""

    sqnr_db: float
    cosine: float
    max_abs_error: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "sqnr_db": self.sqnr_db if math.isfinite(self.sqnr_db) else None,
            "cosine": self.cosine,
            "max_abs_error": self.max_abs_error,
        }


@dataclass(frozen=True)
class HistogramData:
    """Counts of the fp32 values on equal bins over ``[lo, hi]``, and how many fell outside."""

    lo: float
    hi: float
    counts: tuple[int, ...]
    below: int
    above: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "lo": self.lo,
            "hi": self.hi,
            "counts": list(self.counts),
            "below": self.below,
            "above": self.above,
        }


@dataclass(frozen=True)
class WeightRange:
    """A layer's weight: the range its integers represent, and the range of its values."""

    name: str
    range: tuple[float, float]
    values: tuple[float, float]
    per_channel: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "range": list(self.range),
            "values": list(self.values),
            "per_channel": self.per_channel,
        }


@dataclass(frozen=True)
class LayerError:
    """One quantized tensor.

    Attributes:
        tensor: Its name in the fp32 model.
        op_type: The fp32 op that computes it ("input" for a graph input).
        dequantized: The DequantizeLinear output that stands for it in the quantized model.
        activation_range: The float range its Q/DQ pair represents (``(qmin - z) s, (qmax - z) s``).
        observed_range: The smallest and largest fp32 value seen.
        accumulated: Its error with the whole model quantized.
        introduced: Its error when the layer computing it reads exact fp32 inputs.
        histogram: Its fp32 values over ``activation_range``.
        weights: The weights of the layer computing it.
    """

    tensor: str
    op_type: str
    dequantized: str
    activation_range: tuple[float, float]
    accumulated: ErrorMetrics
    introduced: ErrorMetrics
    histogram: HistogramData
    weights: tuple[WeightRange, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "tensor": self.tensor,
            "op_type": self.op_type,
            "dequantized": self.dequantized,
            "activation_range": list(self.activation_range),
            "accumulated": self.accumulated.to_dict(),
            "introduced": self.introduced.to_dict(),
            "histogram": self.histogram.to_dict(),
            "weights": [w.to_dict() for w in self.weights],
        }


@dataclass(frozen=True)
class ComparisonReport:
    """Per-layer error of a quantized model against its fp32 model.

    Attributes:
        num_samples: Samples compared.
        layers: One entry per matched quantized tensor, in graph order.
        unmatched: QuantizeLinear inputs of the quantized model with no fp32 counterpart.
    """

    num_samples: int
    layers: tuple[LayerError, ...]
    unmatched: tuple[str, ...] = ()

    def ranked(self) -> list[LayerError]:
        """Layers by introduced error, worst (lowest SQNR) first."""
        return sorted(
            self.layers, key=lambda layer: (layer.introduced.sqnr_db, -layer.introduced.max_abs_error)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": REPORT_VERSION,
            "num_samples": self.num_samples,
            "ranking": [layer.tensor for layer in self.ranked()],
            "layers": [layer.to_dict() for layer in self.layers],
            "unmatched": list(self.unmatched),
        }


__all__ = ["REPORT_VERSION", "ComparisonReport", "ErrorMetrics", "HistogramData", "LayerError", "WeightRange"]
