"""The running histogram that the histogram-based observers share.

State: ``lo``, ``hi``, the range of every finite value seen so far, and ``bins`` counts on the
power-of-two grid that range determines (:mod:`~onnxq.calibration.observers.histogram_binning`;
for a subclass that says ``centred``, the grid centred on zero holding ``[-T, T]``,
``T = max(|lo|, |hi|)``, onnxruntime's layout). An update whose values stay on the grid adds
their counts; one that widens the range moves the old counts onto the wider grid, whose cells
hold whole cells of the old one, and adds the new counts. Memory is ``O(bins)`` whatever the
number of samples; there is no per-sample history.

The histogram is therefore a function of the data set alone: whatever the order, batching or
sharding of the data, the same values give the same counts, and ``merge`` (both histograms moved
onto the union's grid and added) gives exactly what one observer fed everything gives. So do
the ranges chosen from it, and a model calibrated on shards merged with ``onnxq merge-stats`` is
the same, byte for byte, as one calibrated on all the data. A chosen range is clipped to the
observed ``[lo, hi]`` (the grid's cells reach beyond it).
:class:`RunningHistogramObserver` holds this state; a subclass only says how a range is
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
from onnxq.calibration.observers.histogram_binning import grid_counts, grid_for, regrid, resample
from onnxq.errors import ConfigError
from onnxq.qparams import QParams, choose_qparams

#: Most bins a histogram may have.
MAX_BINS = 1 << 14
#: Grid cells kept per bin: the data range fills at least half of them, so the bins handed to the
#: range searches are built from at least four cells each.
CELLS_PER_BIN = 8
#: Most values a loaded histogram may have counted (merging many stays far from float64 overflow).
MAX_TOTAL_COUNT = 2.0**62


class RunningHistogramObserver:
    """Running histogram of one tensor (per tensor only); subclasses choose the range from it.

    The constructor's arguments are the observer's settings: ``bins`` here,
    plus each subclass's own, stored as attributes of the same names. They are what
    ``state_dict`` records and what two observers must share to be merged.
    """

    kind: ClassVar[str]
    supports_axis: ClassVar[bool] = False
    #: Whether :meth:`choose_range` depends on ``(dtype, symmetric, reduce_range)``.
    scheme_dependent: ClassVar[bool] = True
    #: Bins over ``[-T, T]``, ``T = max(|min|, |max|)``, instead of ``[min, max]`` (onnxruntime's layout).
    centred: ClassVar[bool] = False

    def __init__(self, axis: int | None = None, bins: int = 2048) -> None:
        if axis is not None:
            raise ConfigError(f"observer {self.kind!r} is per-tensor only, got axis={axis}")
        int_arg(self.kind, "bins", bins, 2, MAX_BINS)
        self.axis = None
        self.bins = bins
        self._cells = np.zeros(bins * CELLS_PER_BIN, dtype=np.float64)
        self._hist: np.ndarray | None = None  # the bins over the data range, made when asked
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
        """``bins`` equal bins over :meth:`data_range` (from the grid cells; cached until the next
        update). The range searches read this."""
        if self._hist is None:
            lo, hi = self.data_range() if self.reached else (0.0, 0.0)
            self._hist = resample(self._cells, *self.bin_grid(), lo, hi, self.bins)
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

    def data_range(self) -> tuple[float, float]:
        """``[min, max]``, or ``[-T, T]`` with ``T = max(|min|, |max|)`` for a ``centred`` observer."""
        if not self.centred:
            return self._lo, self._hi
        t = max(-self._lo, self._hi)
        return -t, t

    def bin_grid(self) -> tuple[int, int]:
        """The cells' grid ``(k0, e)``: cell ``i`` is ``[(k0 + i) 2^e, (k0 + i + 1) 2^e)``."""
        if not self.reached:
            return 0, 0
        return grid_for(self._lo, self._hi, self._cells.shape[0], self.centred)

    def histogram_range(self) -> tuple[float, float]:
        """The interval :attr:`histogram`'s bins cover: :meth:`data_range`."""
        return self.data_range()

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
        self._hist = None
        old = self.bin_grid() if self.reached else None
        self._lo, self._hi = min(self._lo, x_lo), max(self._hi, x_hi)
        new = self.bin_grid()
        if old is not None and new != old:
            self._cells = regrid(self._cells, *old, *new)
        self._cells += grid_counts(finite, *new, self._cells.shape[0])

    def merge(self, other: RunningHistogramObserver) -> Any:
        """The histogram of both data sets: both moved onto the union's grid and added (exact)."""
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
            grid = out.bin_grid()
            moved = (regrid(o._cells, *o.bin_grid(), *grid) for o in parts)
            out._cells = sum(moved, np.zeros(out._cells.shape))
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
            lo, hi = self.choose_range(dtype, symmetric, reduce_range)
            data_lo, data_hi = self.data_range()
            self._ranges[key] = (min(max(lo, data_lo), data_hi), max(min(hi, data_hi), data_lo))
        return self._ranges[key]

    def qparams(self, dtype: str, symmetric: bool, reduce_range: bool) -> QParams:
        """:func:`~onnxq.qparams.choose_qparams` of :meth:`chosen_range` (scale 1 before any data)."""
        lo, hi = self.chosen_range(dtype, symmetric, reduce_range)
        return choose_qparams(lo, hi, dtype, symmetric, reduce_range)

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Settings, range, and the grid cells from the first to the last one holding a count
        (``cells_offset``: the index of the first; the grid itself follows from the range)."""
        reached = self.reached
        used = np.flatnonzero(self._cells)
        first, last = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 0)
        counts = self._cells[first:last]
        whole = bool(np.all(counts == np.floor(counts)) and counts.max(initial=0) < 2.0**53)
        return {
            "observer": self.kind,
            "axis": None,
            **self.settings(),
            "min": self._lo if reached else None,
            "max": self._hi if reached else None,
            "cells_offset": first,
            "cells": [int(c) for c in counts] if whole else counts.tolist(),
            "nonfinite": self._nonfinite,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Any:
        """Rebuild an observer from :meth:`state_dict` output; a bad field is a one-line ValueError."""
        settings = cls.setting_names()
        check_state_fields(
            cls.kind,
            state,
            {"observer", "axis", *settings, "min", "max", "cells_offset", "cells", "nonfinite"},
        )
        if state["axis"] is not None:
            raise ValueError(f"{cls.kind} observer state: 'axis' must be null, got {state['axis']!r}")
        try:
            obs = cls(**{name: state[name] for name in settings})
        except ConfigError as e:
            raise ValueError(f"{cls.kind} observer state: {e}") from None
        counts = _cells_field(state["cells"], obs._cells.shape[0])
        offset = count_field(state, "cells_offset")
        if state["min"] is None or state["max"] is None:
            if state["min"] is not None or state["max"] is not None or counts.any():
                raise ValueError("'min' and 'max' must both be numbers, or both null with no counts")
        else:
            obs._lo, obs._hi = _range_fields(state["min"], state["max"])
            if not counts.any():
                raise ValueError("'cells' has no counts although 'min' and 'max' are set")
            k0, e = obs.bin_grid()
            low, high = obs.data_range()
            first = math.floor(math.ldexp(low, -e)) - k0
            last = math.floor(math.ldexp(high, -e)) - k0
            if offset < first or offset + counts.size - 1 > last:
                raise ValueError(
                    f"'cells' ({counts.size} from {offset}) reach beyond the cells {first}..{last} "
                    "that 'min' and 'max' cover"
                )
            obs._cells[offset : offset + counts.size] = counts
        obs._nonfinite = count_field(state, "nonfinite")
        return obs

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings()}, min={self._lo}, max={self._hi})"


def _cells_field(value: object, size: int) -> np.ndarray:
    if not isinstance(value, list) or len(value) > size:
        got = len(value) if isinstance(value, list) else type(value).__name__
        raise ValueError(f"'cells' must be a list of at most {size} counts, got {got}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise ValueError("'cells' must hold numbers only")
    if any(isinstance(v, int) and abs(v) > MAX_TOTAL_COUNT for v in value):
        raise ValueError(f"'cells' counts must be at most {MAX_TOTAL_COUNT:g}")
    cells = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(cells)) or np.any(cells < 0) or cells.sum() > MAX_TOTAL_COUNT:
        raise ValueError(f"'cells' counts must be non-negative, their total at most {MAX_TOTAL_COUNT:g}")
    return cells


def _range_fields(lo: object, hi: object) -> tuple[float, float]:
    big = float(np.finfo(np.float32).max)  # observed float32 tensors never go beyond it
    for name, v in (("min", lo), ("max", hi)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not abs(v) <= big:
            raise ValueError(f"{name!r} must be a float32 number (magnitude at most {big:.4g}), got {v!r}")
    if not lo <= hi:  # type: ignore[operator]
        raise ValueError(f"'min' must not exceed 'max', got [{lo}, {hi}]")
    return float(lo), float(hi)  # type: ignore[arg-type]
