"""Range observers: running min/max, its moving average, and the per-channel variant.

For each update with finite values ``x_t`` (NaN/Inf are ignored and counted):

* ``minmax``:  ``lo = min(lo, min x_t)``, ``hi = max(hi, max x_t)`` — exact, order independent.
* ``moving_average_minmax``: the first update sets ``lo, hi = min x_1, max x_1``; afterwards
  ``lo += c * (min x_t - lo)`` and ``hi += c * (max x_t - hi)`` with ``c = averaging_constant``
  (0.01, as PyTorch's ``MovingAverageMinMaxObserver``).
* ``per_channel_minmax``: ``minmax`` named after PyTorch's observer for weights.

Every observer is per-tensor when ``axis is None`` and per-channel along ``axis`` otherwise (the
plan passes the axis natural to the consuming op), so the same statistics are kept per channel.
``qparams`` widens the range to contain zero and delegates to :func:`onnxq.qparams.choose_qparams`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from onnxq.calibration.observers._util import (
    as_float,
    channel_min_max,
    channels_first,
    check_state_fields,
    constructor_args,
    count_field,
    finite_min_max,
    from_json_floats,
    to_json_floats,
)
from onnxq.calibration.observers.base import register_observer
from onnxq.qparams import QParams, choose_qparams
from onnxq.scheme import PER_TENSOR, PerChannel


class _RangeObserver:
    """Common state of the range observers: ``lo``/``hi`` (0-d, or ``(C,)`` per channel)."""

    kind: ClassVar[str]
    supports_axis: ClassVar[bool] = True

    def __init__(self, axis: int | None = None) -> None:
        if axis is not None and (isinstance(axis, bool) or not isinstance(axis, int)):
            raise ValueError(f"{self.kind} observer: axis must be an int or None, got {axis!r}")
        self.axis = axis
        self._lo = np.asarray(np.inf)
        self._hi = np.asarray(-np.inf)
        self._updates = 0
        self._nonfinite = 0

    # -- statistics -------------------------------------------------------------------------
    def update(self, x: np.ndarray) -> None:
        """Fold one batch into the statistics; NaN/Inf entries are ignored and counted."""
        arr = as_float(x)
        if self.axis is None:
            lo_f, hi_f, bad, _ = finite_min_max(arr)
            lo, hi = np.asarray(lo_f), np.asarray(hi_f)
        else:
            lo, hi, bad = channel_min_max(channels_first(arr, self.axis))
            if self._lo.ndim == 1 and self._lo.shape != lo.shape:
                raise ValueError(
                    f"{self.kind} observer: {lo.shape[0]} channels on axis {self.axis}, "
                    f"expected {self._lo.shape[0]} as in earlier batches"
                )
        self._nonfinite += bad
        seen = lo <= hi
        if not np.any(seen):
            return
        if self._lo.ndim != lo.ndim:  # first per-channel update fixes the channel count
            self._lo = np.full(lo.shape, np.inf)
            self._hi = np.full(lo.shape, -np.inf)
        self._combine(lo, hi, seen)
        self._updates += 1

    def _combine(self, lo: np.ndarray, hi: np.ndarray, seen: np.ndarray) -> None:
        raise NotImplementedError

    @property
    def min_val(self) -> np.ndarray:
        """Observed lower bound (``+inf`` where nothing finite was seen)."""
        return self._lo.copy()

    @property
    def max_val(self) -> np.ndarray:
        """Observed upper bound (``-inf`` where nothing finite was seen)."""
        return self._hi.copy()

    @property
    def reached(self) -> bool:
        return bool(np.any(self._lo <= self._hi))

    @property
    def nonfinite_count(self) -> int:
        return self._nonfinite

    # -- results -----------------------------------------------------------------------------
    def qparams(self, dtype: str, symmetric: bool, reduce_range: bool) -> QParams:
        """Scale/zero point of the observed range; channels never reached get scale 1."""
        if self.axis is not None and self._lo.ndim == 0:
            raise ValueError(f"{self.kind} observer (axis={self.axis}) has seen no data")
        seen = self._lo <= self._hi
        lo = np.where(seen, self._lo, 0.0)
        hi = np.where(seen, self._hi, 0.0)
        granularity = PER_TENSOR if self.axis is None else PerChannel(self.axis)
        return choose_qparams(lo, hi, dtype, symmetric, reduce_range, granularity)

    def _check_same(self, other: object) -> None:
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        assert isinstance(other, _RangeObserver)
        if other.axis != self.axis:
            raise ValueError(f"cannot merge observers with axis {self.axis} and {other.axis}")
        if self._lo.ndim == 1 and other._lo.ndim == 1 and self._lo.shape != other._lo.shape:
            raise ValueError(
                f"cannot merge per-channel observers of {self._lo.shape[0]} and {other._lo.shape[0]} channels"
            )

    def _init_kwargs(self) -> dict[str, Any]:
        return {"axis": self.axis}

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state; non-finite bounds (nothing seen) are stored as ``None``."""
        return {
            "observer": self.kind,
            **self._init_kwargs(),
            "min": to_json_floats(self._lo),
            "max": to_json_floats(self._hi),
            "updates": self._updates,
            "nonfinite": self._nonfinite,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> _RangeObserver:
        """Rebuild an observer from :meth:`state_dict` output."""
        args = [a for a in constructor_args(cls) if a != "axis" or cls.supports_axis]
        check_state_fields(cls.kind, state, {"observer", *args, "min", "max", "updates", "nonfinite"})
        obs = cls(**{k: state[k] for k in args})
        lo, hi = from_json_floats(state["min"], np.inf), from_json_floats(state["max"], -np.inf)
        if lo.shape != hi.shape or lo.ndim > 1:
            raise ValueError(
                f"min and max must be numbers or lists of one length, got shapes {lo.shape}, {hi.shape}"
            )
        seen = np.isfinite(lo) | np.isfinite(hi)
        if obs.axis is None and lo.ndim != 0:
            raise ValueError("a per-tensor observer's min and max must be numbers, not lists")
        if obs.axis is not None and lo.ndim == 0 and np.any(seen):
            raise ValueError(
                f"a per-channel observer (axis {obs.axis}) keeps lists of min and max, not numbers"
            )
        if np.any(np.isnan(lo) | np.isnan(hi)) or np.any(
            seen & ~(np.isfinite(lo) & np.isfinite(hi) & (lo <= hi))
        ):
            raise ValueError("min and max must be finite with min <= max (or both null: nothing seen)")
        big = float(np.finfo(np.float32).max)  # observed float32 tensors never go beyond it
        if np.any(seen & ((np.abs(lo) > big) | (np.abs(hi) > big))):
            raise ValueError(f"min and max must be float32 values (magnitude at most {big:.4g})")
        obs._lo, obs._hi = lo, hi
        obs._updates, obs._nonfinite = count_field(state, "updates"), count_field(state, "nonfinite")
        return obs

    def _copy_with(self, lo: np.ndarray, hi: np.ndarray, updates: int, nonfinite: int) -> Any:
        obs = type(self)(**self._init_kwargs())
        obs._lo, obs._hi, obs._updates, obs._nonfinite = lo, hi, updates, nonfinite
        return obs

    def __repr__(self) -> str:
        return f"{type(self).__name__}(axis={self.axis}, min={self._lo}, max={self._hi})"


@register_observer("minmax")
class MinMaxObserver(_RangeObserver):
    """Running minimum and maximum of every value seen (per tensor or per channel)."""

    kind = "minmax"

    def _combine(self, lo: np.ndarray, hi: np.ndarray, seen: np.ndarray) -> None:
        self._lo = np.minimum(self._lo, lo)
        self._hi = np.maximum(self._hi, hi)

    def merge(self, other: MinMaxObserver) -> MinMaxObserver:  # type: ignore[override]
        """The observer that saw both data sets: the same result as observing them in one stream."""
        self._check_same(other)
        return self._copy_with(
            np.minimum(self._lo, other._lo),
            np.maximum(self._hi, other._hi),
            self._updates + other._updates,
            self._nonfinite + other._nonfinite,
        )


@register_observer("per_channel_minmax")
class PerChannelMinMaxObserver(MinMaxObserver):
    """:class:`MinMaxObserver` under PyTorch's name for weight observers; per-channel along ``axis``."""

    kind = "per_channel_minmax"


@register_observer("moving_average_minmax")
class MovingAverageMinMaxObserver(_RangeObserver):
    """Exponential moving average of each batch's min and max (``averaging_constant`` = c)."""

    kind = "moving_average_minmax"

    def __init__(self, axis: int | None = None, averaging_constant: float = 0.01) -> None:
        super().__init__(axis)
        c = averaging_constant
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0.0 < c <= 1.0:
            raise ValueError(f"averaging_constant must be a number in (0, 1], got {c!r}")
        self.averaging_constant = float(c)

    def _init_kwargs(self) -> dict[str, Any]:
        return {"axis": self.axis, "averaging_constant": self.averaging_constant}

    def _combine(self, lo: np.ndarray, hi: np.ndarray, seen: np.ndarray) -> None:
        c = self.averaging_constant
        fresh = ~(self._lo <= self._hi)  # no earlier value: take this batch as is
        with np.errstate(invalid="ignore"):  # inf - inf in channels masked out below
            new_lo = np.where(fresh, lo, self._lo + c * (lo - self._lo))
            new_hi = np.where(fresh, hi, self._hi + c * (hi - self._hi))
        self._lo = np.where(seen, new_lo, self._lo)
        self._hi = np.where(seen, new_hi, self._hi)

    def merge(self, other: MovingAverageMinMaxObserver) -> MovingAverageMinMaxObserver:  # type: ignore[override]
        """Update-count weighted mean of the two averages (a moving average has no exact merge)."""
        self._check_same(other)
        if self.averaging_constant != other.averaging_constant:
            raise ValueError("cannot merge moving averages with different averaging constants")
        a_seen, b_seen = self._lo <= self._hi, other._lo <= other._hi
        wa, wb = max(self._updates, 1), max(other._updates, 1)

        def mix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            both = (wa * np.where(a_seen, a, 0.0) + wb * np.where(b_seen, b, 0.0)) / (wa + wb)
            return np.where(a_seen & b_seen, both, np.where(a_seen, a, b))

        return self._copy_with(
            mix(self._lo, other._lo),
            mix(self._hi, other._hi),
            self._updates + other._updates,
            self._nonfinite + other._nonfinite,
        )


@register_observer("channel_minmax")
class ChannelMinMaxObserver(MinMaxObserver):
    """``minmax`` parameters (one range per tensor) from min/max kept per channel of
    ``channel_axis`` (1: NCHW channels, the features of a 2-D Gemm input).

    The per-channel maxima are what a saturation audit reads (:mod:`onnxq.accuracy.saturation`):
    how large each input channel's quantized values get. A tensor of lower rank is one channel.
    """

    kind = "channel_minmax"
    supports_axis = False

    def __init__(self, axis: int | None = None, channel_axis: int = 1) -> None:
        if axis is not None:
            raise ValueError(f"{self.kind} observer: parameters are per tensor, got axis={axis}")
        if isinstance(channel_axis, bool) or not isinstance(channel_axis, int) or channel_axis < 0:
            raise ValueError(f"{self.kind} observer: channel_axis must be an int >= 0, got {channel_axis!r}")
        super().__init__(channel_axis)

    def update(self, x: np.ndarray) -> None:
        arr = np.asarray(x)
        super().update(arr if arr.ndim > self.axis else arr.reshape(1, *([1] * self.axis), -1))  # type: ignore[operator]

    def _init_kwargs(self) -> dict[str, Any]:
        return {"channel_axis": self.axis}

    def merge(self, other: MinMaxObserver) -> MinMaxObserver:  # type: ignore[override]
        """Per channel when both saw the same channels; else (tensors of one group with other
        channel counts: a Concat's inputs) one channel holding the union range."""
        if type(other) is type(self) and self._lo.shape != other._lo.shape:
            return self._collapsed().merge(other._collapsed())  # type: ignore[attr-defined]
        return super().merge(other)

    def _collapsed(self) -> ChannelMinMaxObserver:
        seen = self._lo <= self._hi
        lo = np.asarray([np.min(self._lo[seen])]) if np.any(seen) else np.asarray([np.inf])
        hi = np.asarray([np.max(self._hi[seen])]) if np.any(seen) else np.asarray([-np.inf])
        return self._copy_with(lo, hi, self._updates, self._nonfinite)  # type: ignore[no-any-return]

    def qparams(self, dtype: str, symmetric: bool, reduce_range: bool) -> QParams:
        seen = self._lo <= self._hi
        lo = float(np.min(np.where(seen, self._lo, 0.0))) if np.any(seen) else 0.0
        hi = float(np.max(np.where(seen, self._hi, 0.0))) if np.any(seen) else 0.0
        return choose_qparams(lo, hi, dtype, symmetric, reduce_range)
