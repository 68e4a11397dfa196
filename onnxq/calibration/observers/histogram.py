"""HistogramObserver: a running histogram and PyTorch's L2-error range search.

The state is the running histogram of :mod:`onnxq.calibration.observers.running_histogram` (``bins``
counts over the range seen so far, re-binned as PyTorch does when a batch widens it).
``qparams`` runs :func:`onnxq.calibration.observers.l2_search.search_range` (256 destination bins,
as PyTorch uses for both 8-bit dtypes, with or without ``reduce_range``) and hands the chosen range
to :func:`onnxq.qparams.choose_qparams`. ``merge`` re-bins both histograms onto the union range.
"""

from __future__ import annotations

from onnxq.calibration.observers.base import register_observer
from onnxq.calibration.observers.l2_search import search_range
from onnxq.calibration.observers.running_histogram import RunningHistogramObserver

DST_BINS = 256


@register_observer("histogram")
class HistogramObserver(RunningHistogramObserver):
    """Running histogram of a tensor with PyTorch's L2 range search (per-tensor only)."""

    kind = "histogram"
    scheme_dependent = False

    def search_range(self) -> tuple[float, float]:
        """The ``(min, max)`` the L2 search chooses (cached until the next update)."""
        return self.chosen_range("uint8", False, False)

    def choose_range(self, dtype: str, symmetric: bool, reduce_range: bool) -> tuple[float, float]:
        return search_range(self.histogram, self._lo, self._hi, DST_BINS)
