"""The running histogram that the histogram-based observers share.

State: ``bins`` counts over ``[lo, hi]``, the range of every finite value seen so far (over
``[-T, T]``, ``T = max(|lo|, |hi|)``, for a subclass that says ``centred``), and ``lo``, ``hi``. An update
whose values stay inside the range adds its counts; one that widens it re-bins the old histogram
onto the new range the way PyTorch does (each old bin split into ``upsample_rate`` equal parts,
each part's mass moved to the new bin holding its mid-point) and adds the new counts, binned on
the new range. Memory is ``O(bins)`` whatever the number of samples; there is no per-sample history.

``merge`` re-bins both histograms onto the union range and adds them: exact when the two ranges
are equal (re-binning onto the same range is the identity), within one bin's mass placement
otherwise. :class:`RunningHistogramObserver` holds this state; a subclass only says how a range is
chosen from the histogram (:meth:`RunningHistogramObserver.choose_range`), and ``qparams`` hands
that range to :func:`onnxq.qparams.choose_qparams`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from onnxq.calibration.observers._util import (
    as_float,
    check_state_fields,
    constructor_args,
    count_field,
    finite_min_max,
    int_arg,
)
from onnxq.calibration.observers.histogram_binning import bin_counts, rebin
from onnxq.errors import ConfigError
from onnxq.qparams import QParams, choose_qparams

#: Bounds of the constructor's arguments: memory is O(bins x upsample_rate) while re-binning.
MAX_BINS = 1 << 16
MAX_UPSAMPLE_RATE = 1 << 10
MAX_FINE_BINS = 1 << 22
#: Most values a loaded histogram may have counted (merging many stays far from float64 overflow).
MAX_TOTAL_COUNT = 2.0**62


class RunningHistogramObserver:
    """Running histogram of one tensor (per tensor only); subclasses choose the range from it.

    The constructor's arguments are the observer's settings: ``bins`` and ``upsample_rate`` here,
    plus each subclass's own, stored as attributes of the same names. They are what
    ``state_dict`` records and what two observers must share to be merged.
    """

    kind: ClassVar[str]
    supports_axis: ClassVar[bool] = False
    #: Whether :meth:`choose_range` depends on ``(dtype, symmetric, reduce_range)``.
    scheme_dependent: ClassVar[bool] = True
    #: Bins over ``[-T, T]``, ``T = max(|min|, |max|)``, instead of ``[min, max]`` (onnxruntime's layout).
    centred: ClassVar[bool] = False

    def __init__(self, axis: int | None = None, bins: int = 2048, upsample_rate: int = 16) -> None:
        if axis is not None:
            raise ConfigError(f"observer {self.kind!r} is per-tensor only, got axis={axis}")
        int_arg(self.kind, "bins", bins, 1, MAX_BINS)
        int_arg(self.kind, "upsample_rate", upsample_rate, 1, MAX_UPSAMPLE_RATE)
        if bins * upsample_rate > MAX_FINE_BINS:
            raise ConfigError(
                f"observer {self.kind!r}: bins x upsample_rate must be at most {MAX_FINE_BINS} "
                f"(re-binning works on that many sub-bins), got {bins} x {upsample_rate}"
            )
        self.axis = None
        self.bins = bins
        self.upsample_rate = upsample_rate
        self._hist = np.zeros(bins, dtype=np.float64)
        self._lo = math.inf
        self._hi = -math.inf
        self._nonfinite = 0
        self._ranges: dict[tuple[str, bool, bool], tuple[float, float]] = {}

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        """The constructor's arguments other than ``axis``: the settings ``state_dict`` records."""
        return tuple(p for p in constructor_args(cls) if p != "axis")

    def settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.setting_names()}

    # -- statistics -------------------------------------------------------------------------
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

    def histogram_range(self) -> tuple[float, float]:
        """The interval the bins cover: ``[min, max]``, or ``[-T, T]`` with ``T = max(|min|, |max|)``
        for a ``centred`` observer."""
        if not self.centred:
            return self._lo, self._hi
        t = max(-self._lo, self._hi)
        return -t, t

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
        self._ranges.clear()
        old = self.histogram_range() if self.reached else None
        self._lo, self._hi = min(self._lo, x_lo), max(self._hi, x_hi)
        new = self.histogram_range()
        counts = bin_counts(finite, *new, self.bins)
        if old is not None and new != old:
            self._hist = rebin(self._hist, *old, *new, self.upsample_rate)
        self._hist += counts

    def merge(self, other: RunningHistogramObserver) -> Any:
        """The histogram of both data sets, re-binned onto the union of the two ranges."""
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        if other.bins != self.bins:
            raise ValueError(f"cannot merge histograms of {self.bins} and {other.bins} bins")
        if other.settings() != self.settings():
            raise ValueError(
                f"cannot merge {self.kind} observers of different settings: "
                f"{self.settings()} and {other.settings()}"
            )
        out = type(self)(**self.settings())
        out._nonfinite = self._nonfinite + other._nonfinite
        parts = [o for o in (self, other) if o.reached]
        if parts:
            out._lo = min(o._lo for o in parts)
            out._hi = max(o._hi for o in parts)
            span = out.histogram_range()
            out._hist = sum(
                (rebin(o._hist, *o.histogram_range(), *span, self.upsample_rate) for o in parts),
                np.zeros(self.bins),
            )
        return out

    # -- results -----------------------------------------------------------------------------
    def choose_range(self, dtype: str, symmetric: bool, reduce_range: bool) -> tuple[float, float]:
        """The ``(lo, hi)`` to quantize with, from a reached histogram (the subclass's statistic)."""
        raise NotImplementedError

    def chosen_range(self, dtype: str, symmetric: bool, reduce_range: bool) -> tuple[float, float]:
        """:meth:`choose_range`, cached until the next update (once for every scheme when the
        subclass's choice does not depend on it); ``(0, 0)`` before any data."""
        if not self.reached:
            return 0.0, 0.0
        key = (dtype, symmetric, reduce_range) if self.scheme_dependent else ("", False, False)
        if key not in self._ranges:
            self._ranges[key] = self.choose_range(dtype, symmetric, reduce_range)
        return self._ranges[key]

    def qparams(self, dtype: str, symmetric: bool, reduce_range: bool) -> QParams:
        """:func:`~onnxq.qparams.choose_qparams` of :meth:`chosen_range` (scale 1 before any data)."""
        lo, hi = self.chosen_range(dtype, symmetric, reduce_range)
        return choose_qparams(lo, hi, dtype, symmetric, reduce_range)

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        reached = self.reached
        return {
            "observer": self.kind,
            "axis": None,
            **self.settings(),
            "min": self._lo if reached else None,
            "max": self._hi if reached else None,
            "histogram": self._hist.tolist(),
            "nonfinite": self._nonfinite,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Any:
        """Rebuild an observer from :meth:`state_dict` output; a bad field is a one-line ValueError."""
        settings = cls.setting_names()
        check_state_fields(
            cls.kind, state, {"observer", "axis", *settings, "min", "max", "histogram", "nonfinite"}
        )
        if state["axis"] is not None:
            raise ValueError(f"{cls.kind} observer state: 'axis' must be null, got {state['axis']!r}")
        try:
            obs = cls(**{name: state[name] for name in settings})
        except ConfigError as e:
            raise ValueError(f"{cls.kind} observer state: {e}") from None
        obs._hist = _histogram_field(state["histogram"], obs.bins)
        if state["min"] is None or state["max"] is None:
            if state["min"] is not None or state["max"] is not None or obs._hist.any():
                raise ValueError("'min' and 'max' must both be numbers, or both null with no counts")
        else:
            obs._lo, obs._hi = _range_fields(state["min"], state["max"])
            if not obs._hist.any():
                raise ValueError("'histogram' has no counts although 'min' and 'max' are set")
        obs._nonfinite = count_field(state, "nonfinite")
        return obs

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings()}, min={self._lo}, max={self._hi})"


def _histogram_field(value: object, bins: int) -> np.ndarray:
    if not isinstance(value, list) or len(value) != bins:
        size = len(value) if isinstance(value, list) else type(value).__name__
        raise ValueError(f"'histogram' must be a list of {bins} counts, got {size}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise ValueError("'histogram' must hold numbers only")
    hist = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(hist)) or np.any(hist < 0) or hist.sum() > MAX_TOTAL_COUNT:
        raise ValueError(f"'histogram' counts must be non-negative, their total at most {MAX_TOTAL_COUNT:g}")
    return hist


def _range_fields(lo: object, hi: object) -> tuple[float, float]:
    big = float(np.finfo(np.float32).max)  # observed float32 tensors never go beyond it
    for name, v in (("min", lo), ("max", hi)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not abs(v) <= big:
            raise ValueError(f"{name!r} must be a float32 number (magnitude at most {big:.4g}), got {v!r}")
    if not lo <= hi:  # type: ignore[operator]
        raise ValueError(f"'min' must not exceed 'max', got [{lo}, {hi}]")
    return float(lo), float(hi)  # type: ignore[arg-type]
