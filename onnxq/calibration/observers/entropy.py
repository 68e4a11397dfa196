"""EntropyObserver: the range whose 8-bit quantization loses least information (KL divergence),
as TensorRT's entropy calibration and onnxruntime's ``EntropyCalibrater`` choose it.

The state is the running histogram of :mod:`~onnxq.calibration.observers.running_histogram`,
centred: ``bins`` counts over ``[-T, T]``, ``T = max(|lo|, |hi|)``, the layout onnxruntime collects
(``merge`` is exact when the two ranges are equal).
:func:`~onnxq.calibration.observers.kl_search.entropy_threshold` picks the window of bins around
zero, ``quantized_bins`` wide at the least, whose divergence is least. Its edges, clipped to
``[lo, hi]``, are the range handed to :func:`onnxq.qparams.choose_qparams`.

On the same data the histogram is onnxruntime's as long as the first batch holds the largest
``|x|``. When a later batch widens the range, onnxruntime appends bins of the first batch's width
(its histogram, and the set of candidate windows, grow with the range), while this one re-bins
onto ``bins`` bins over the wider range (fixed memory); the thresholds then differ by the
difference in resolution.

Defaults: ``quantized_bins = 128`` (onnxruntime's ``num_quantized_bins``, TensorRT's 128) and
``bins = 2048`` (TensorRT's; onnxruntime's ``EntropyCalibrater`` defaults to 128 bins, which with
128 quantized bins leaves a single candidate, the whole range). The window does not depend on the
quantized dtype: as in onnxruntime, ``symmetric`` and ``reduce_range`` act through
``choose_qparams`` only.
"""

from __future__ import annotations

from onnxq.calibration.observers._util import int_arg
from onnxq.calibration.observers.base import register_observer
from onnxq.calibration.observers.kl_search import entropy_threshold
from onnxq.calibration.observers.running_histogram import RunningHistogramObserver


@register_observer("entropy")
class EntropyObserver(RunningHistogramObserver):
    """KL-divergence (entropy) calibration on a running histogram, per tensor."""

    kind = "entropy"
    centred = True
    scheme_dependent = False

    def __init__(self, axis: int | None = None, bins: int = 2048, quantized_bins: int = 128) -> None:
        super().__init__(axis, bins)
        self.quantized_bins = int_arg(self.kind, "quantized_bins", quantized_bins, 2, bins)

    def choose_range(self, dtype: str, symmetric: bool, reduce_range: bool) -> tuple[float, float]:
        t = self.histogram_range()[1]
        if not t > 0:
            return self._lo, self._hi
        start, end = entropy_threshold(self.histogram, self.quantized_bins)
        width = 2.0 * t / self.bins
        return max(-t + start * width, self._lo), min(-t + end * width, self._hi)
