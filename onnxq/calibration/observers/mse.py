"""MSEObserver: the range whose quantization has the least expected squared error (rounding plus
clipping) over the observed distribution.

The state is the running histogram of :mod:`~onnxq.calibration.observers.running_histogram`
(``bins`` counts over ``[lo, hi]``; ``merge`` exact when the two ranges are equal). ``qparams``
runs :func:`~onnxq.calibration.observers.mse_search.mse_range`: ``grid`` candidate ranges
``k / grid x [lo, hi]`` (widened to contain 0), each quantized on the integer grid the requested
dtype, symmetry and ``reduce_range`` give, the error of each computed in closed form from the
histogram; the best range goes to :func:`onnxq.qparams.choose_qparams`. The error is exact for a
distribution uniform within each bin, so the choice agrees with quantizing the samples themselves
to about one grid step (``1 / grid`` of the range).
"""

from __future__ import annotations

from onnxq.calibration.observers._util import int_arg
from onnxq.calibration.observers.base import register_observer
from onnxq.calibration.observers.mse_search import mse_range
from onnxq.calibration.observers.running_histogram import RunningHistogramObserver

#: Most candidate ranges: the search holds ``grid x bins`` values.
MAX_GRID = 1000


@register_observer("mse")
class MSEObserver(RunningHistogramObserver):
    """Least expected quantization MSE over a running histogram, per tensor."""

    kind = "mse"

    def __init__(self, axis: int | None = None, grid: int = 100, bins: int = 2048) -> None:
        super().__init__(axis, bins)
        self.grid = int_arg(self.kind, "grid", grid, 1, MAX_GRID)

    def choose_range(self, dtype: str, symmetric: bool, reduce_range: bool) -> tuple[float, float]:
        return mse_range(self.histogram, self._lo, self._hi, dtype, symmetric, reduce_range, self.grid)
