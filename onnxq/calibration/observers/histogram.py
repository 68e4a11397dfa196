"""HistogramObserver: a running histogram and PyTorch's L2-error range search.

State: ``bins`` counts over ``[lo, hi]``, the range of every finite value seen so far. An update
whose values stay inside the range adds its counts; one that widens it re-bins the old histogram
onto the new range the way PyTorch does (each old bin split into ``upsample_rate`` equal parts,
each part's mass moved to the new bin holding its mid-point) and adds the new counts, binned on
the new range. Memory is ``O(bins)`` whatever the number of samples; there is no per-sample history.

``qparams`` runs :func:`onnxq.calibration.observers.l2_search.search_range` (256 destination bins, as PyTorch
uses for both 8-bit dtypes, with or without ``reduce_range``) and hands the chosen range to
:func:`onnxq.qparams.choose_qparams`. ``merge`` re-bins both histograms onto the union range.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from onnxq.calibration.observers._util import as_float, finite_min_max
from onnxq.calibration.observers.base import register_observer
from onnxq.calibration.observers.l2_search import search_range
from onnxq.errors import ConfigError
from onnxq.qparams import QParams, choose_qparams

DST_BINS = 256
_CHUNK = 1 << 16  # elements binned per step: keeps the temporaries in cache
_LANES = 4  # interleaved sub-histograms: runs of equal values (ReLU zeros) do not serialise
_LANE_OF = np.arange(_CHUNK) % _LANES


#: Bounds of the constructor's arguments: memory is O(bins x upsample_rate) while re-binning.
MAX_BINS = 1 << 16
MAX_UPSAMPLE_RATE = 1 << 10
MAX_FINE_BINS = 1 << 22
#: Most values a loaded histogram may have counted (merging many stays far from float64 overflow).
MAX_TOTAL_COUNT = 2.0**62


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return value


def bin_counts(x: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """Counts of the finite values ``x`` (all within ``[lo, hi]``) in ``bins`` equal bins.

    Bin ``i`` holds ``lo + i w <= v < lo + (i+1) w`` (``w = (hi - lo) / bins``, up to float32
    rounding at the edges, as PyTorch's ``histc``); ``hi`` goes in the last bin. With
    ``hi == lo`` everything goes in bin 0.

    Element ``k`` of each chunk counts into sub-histogram ``k % 4`` of ``bins + 2`` slots, so that
    runs of equal values do not serialise one counter: its slot ``lane * (bins + 2) + 1 +
    (v - lo) / w`` is computed with the lane offset folded into one multiply-add, truncated and
    counted by a single ``np.bincount``. The two guard slots of each lane catch positions that
    rounding pushes just outside ``[0, bins)`` (and ``hi`` itself) and are folded into the end bins.
    When ``lo`` is far from zero relative to the range it is subtracted first (no cancellation).
    """
    flat = x.reshape(-1)
    counts = np.zeros(bins, dtype=np.float64)
    if flat.size == 0:
        return counts
    if not hi > lo:
        counts[0] = flat.size
        return counts
    dt = np.dtype(np.float64) if flat.dtype == np.float64 or bins > 8192 else np.dtype(np.float32)
    slots = bins + 2
    width = _LANES * slots
    scale = bins / (hi - lo)
    subtract_first = abs(lo) > 8.0 * (hi - lo)
    n0 = min(_CHUNK, flat.size)
    offset = _LANE_OF[:n0] * float(slots) + 1.0 - (0.0 if subtract_first else lo * scale)
    offset = offset.astype(dt)
    scale_t, lo_t = dt.type(scale), dt.type(lo)
    tmp = np.empty(n0, dtype=dt)
    idx = np.empty(n0, dtype=np.intp)
    lanes = np.zeros(width, dtype=np.float64)
    for begin in range(0, flat.size, _CHUNK):
        part = flat[begin : begin + _CHUNK]
        n = part.size
        t, ix = tmp[:n], idx[:n]
        if subtract_first:
            np.subtract(part, lo_t, out=t)
            np.multiply(t, scale_t, out=t)
        else:
            np.multiply(part, scale_t, out=t)
        np.add(t, offset[:n], out=t)
        np.copyto(ix, t, casting="unsafe")  # truncation; t >= 1 - rounding > 0
        got = np.bincount(ix, minlength=width)
        lanes += got[:width]
        if got.size > width:  # rounding beyond the last guard slot: count it in the last bin
            lanes[width - 1] += got[width:].sum()
    per_lane = lanes.reshape(_LANES, slots).sum(axis=0)
    counts += per_lane[1 : bins + 1]
    counts[0] += per_lane[0]
    counts[-1] += per_lane[bins + 1]
    return counts


def rebin(
    hist: np.ndarray, lo: float, hi: float, new_lo: float, new_hi: float, upsample_rate: int
) -> np.ndarray:
    """Move a histogram over ``[lo, hi]`` onto the same number of bins over ``[new_lo, new_hi]``.

    ``[new_lo, new_hi]`` must contain ``[lo, hi]``. Each bin is split into ``upsample_rate``
    parts of equal mass; each part lands in the new bin containing its mid-point.
    """
    bins = hist.shape[0]
    if lo == new_lo and hi == new_hi:
        return hist.copy()
    if not hi > lo:  # all mass at one point
        return bin_counts(np.asarray([lo]), new_lo, new_hi, bins) * float(hist.sum())
    fine = bins * upsample_rate
    mids = lo + (np.arange(fine, dtype=np.float64) + 0.5) * ((hi - lo) / fine)
    target = np.floor((mids - new_lo) * (bins / (new_hi - new_lo))).astype(np.intp)
    np.clip(target, 0, bins - 1, out=target)
    weights = np.repeat(hist / upsample_rate, upsample_rate)
    return np.bincount(target, weights=weights, minlength=bins)


@register_observer("histogram")
class HistogramObserver:
    """Running histogram of a tensor with PyTorch's L2 range search (per-tensor only)."""

    kind = "histogram"
    supports_axis = False

    def __init__(self, axis: int | None = None, bins: int = 2048, upsample_rate: int = 16) -> None:
        if axis is not None:
            raise ConfigError(f"observer 'histogram' is per-tensor only, got axis={axis}")
        for name, v, most in (("bins", bins, MAX_BINS), ("upsample_rate", upsample_rate, MAX_UPSAMPLE_RATE)):
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= most:
                raise ConfigError(f"observer 'histogram': {name} must be an int in [1, {most}], got {v!r}")
        if bins * upsample_rate > MAX_FINE_BINS:
            raise ConfigError(
                f"observer 'histogram': bins x upsample_rate must be at most {MAX_FINE_BINS} "
                f"(re-binning works on that many sub-bins), got {bins} x {upsample_rate}"
            )
        self.axis = None
        self.bins = bins
        self.upsample_rate = upsample_rate
        self._hist = np.zeros(bins, dtype=np.float64)
        self._lo = math.inf
        self._hi = -math.inf
        self._nonfinite = 0
        self._range_cache: tuple[float, float] | None = None

    @property
    def histogram(self) -> np.ndarray:
        return self._hist.copy()

    @property
    def min_val(self) -> float:
        return self._lo

    @property
    def max_val(self) -> float:
        return self._hi

    @property
    def reached(self) -> bool:
        return self._lo <= self._hi

    @property
    def nonfinite_count(self) -> int:
        return self._nonfinite

    def update(self, x: np.ndarray) -> None:
        """Add one batch; NaN/Inf entries are ignored and counted."""
        arr = as_float(x)
        x_lo, x_hi, bad, finite = finite_min_max(arr)
        self._nonfinite += bad
        if not x_lo <= x_hi:
            return
        self._range_cache = None
        if not self.reached:
            self._lo, self._hi = x_lo, x_hi
            self._hist = bin_counts(finite, x_lo, x_hi, self.bins)
            return
        new_lo, new_hi = min(self._lo, x_lo), max(self._hi, x_hi)
        counts = bin_counts(finite, new_lo, new_hi, self.bins)
        if new_lo != self._lo or new_hi != self._hi:
            self._hist = rebin(self._hist, self._lo, self._hi, new_lo, new_hi, self.upsample_rate)
            self._lo, self._hi = new_lo, new_hi
        self._hist += counts

    def search_range(self) -> tuple[float, float]:
        """The ``(min, max)`` the L2 search chooses (cached until the next update)."""
        if not self.reached:
            return 0.0, 0.0
        if self._range_cache is None:
            self._range_cache = search_range(self._hist, self._lo, self._hi, DST_BINS)
        return self._range_cache

    def qparams(self, dtype: str, symmetric: bool, reduce_range: bool) -> QParams:
        lo, hi = self.search_range()
        return choose_qparams(lo, hi, dtype, symmetric, reduce_range)

    def merge(self, other: HistogramObserver) -> HistogramObserver:
        """The histogram of both data sets, re-binned onto the union of the two ranges."""
        if type(other) is not HistogramObserver:
            raise TypeError(f"cannot merge {type(other).__name__} into HistogramObserver")
        if other.bins != self.bins:
            raise ValueError(f"cannot merge histograms of {self.bins} and {other.bins} bins")
        out = HistogramObserver(bins=self.bins, upsample_rate=self.upsample_rate)
        out._nonfinite = self._nonfinite + other._nonfinite
        parts = [o for o in (self, other) if o.reached]
        if parts:
            out._lo = min(o._lo for o in parts)
            out._hi = max(o._hi for o in parts)
            out._hist = sum(
                (rebin(o._hist, o._lo, o._hi, out._lo, out._hi, self.upsample_rate) for o in parts),
                np.zeros(self.bins),
            )
        return out

    def state_dict(self) -> dict[str, Any]:
        reached = self.reached
        return {
            "observer": self.kind,
            "axis": None,
            "bins": self.bins,
            "upsample_rate": self.upsample_rate,
            "min": self._lo if reached else None,
            "max": self._hi if reached else None,
            "histogram": self._hist.tolist(),
            "nonfinite": self._nonfinite,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> HistogramObserver:
        if state.get("observer") != cls.kind:
            raise ValueError(f"state of {state.get('observer')!r} given to the histogram observer")
        obs = cls(bins=state["bins"], upsample_rate=state["upsample_rate"])
        hist = np.asarray(state["histogram"], dtype=np.float64)
        if hist.shape != (obs.bins,):
            raise ValueError(f"histogram state has {hist.size} bins, expected {obs.bins}")
        if not np.all(np.isfinite(hist)) or np.any(hist < 0) or hist.sum() > MAX_TOTAL_COUNT:
            raise ValueError(
                f"histogram state counts must be non-negative with a total of at most {MAX_TOTAL_COUNT:g}"
            )
        obs._hist = hist
        if state["min"] is not None:
            lo, hi = float(state["min"]), float(state["max"])
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise ValueError(f"histogram state range [{lo}, {hi}] is not a finite interval")
            obs._lo, obs._hi = lo, hi
        elif hist.any():
            raise ValueError("histogram state has counts but no range")
        obs._nonfinite = _count(state["nonfinite"], "nonfinite")
        return obs

    def __repr__(self) -> str:
        return f"HistogramObserver(bins={self.bins}, min={self._lo}, max={self._hi})"
