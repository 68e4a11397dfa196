"""Per-channel statistics of layer inputs observed during calibration: means (for bias correction)
and absolute maxima (for SmoothQuant).

:class:`ChannelMean` keeps, per channel along ``axis``, the sum of the finite values (float64) and
their count: memory ``O(channels)`` whatever the number of samples, and two of them merge exactly
(sums and counts add). ``mean = sum / count`` (0 for a channel with no finite value).

:func:`with_means` lets the calibration engine (:func:`onnxq.calibration.engine.calibrate`) feed
them in the same run as the plan's observers: a tensor observed by both gets a tee that updates
each; :func:`without_means` takes the plan's observers back out of the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


class ChannelMean:
    """Streaming per-channel mean of a tensor along ``axis``; NaN/Inf are ignored and counted."""

    def __init__(self, axis: int) -> None:
        self.axis = axis
        self.sums: np.ndarray | None = None
        self.counts: np.ndarray | None = None
        self.nonfinite_count = 0

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x)
        rows = np.moveaxis(x, self.axis, 0).reshape(x.shape[self.axis], -1)
        finite = np.isfinite(rows)
        sums = np.where(finite, rows, 0).sum(axis=1, dtype=np.float64)
        counts = finite.sum(axis=1)
        self.nonfinite_count += int(finite.size - counts.sum())
        if self.sums is None or self.counts is None:
            self.sums, self.counts = sums, counts
        elif self.sums.shape != sums.shape:
            raise ValueError(f"{sums.shape[0]} channels on axis {self.axis}, earlier {self.sums.shape[0]}")
        else:
            self.sums, self.counts = self.sums + sums, self.counts + counts

    def merge(self, other: ChannelMean) -> ChannelMean:
        out = ChannelMean(self.axis)
        for part in (self, other):
            if part.sums is not None and part.counts is not None:
                out.sums = part.sums if out.sums is None else out.sums + part.sums
                out.counts = part.counts if out.counts is None else out.counts + part.counts
            out.nonfinite_count += part.nonfinite_count
        return out

    @property
    def reached(self) -> bool:
        return self.counts is not None and bool(self.counts.sum() > 0)

    @property
    def mean(self) -> np.ndarray:
        if self.sums is None or self.counts is None:
            raise ValueError("no value observed")
        return np.where(self.counts > 0, self.sums / np.maximum(self.counts, 1), 0.0)


class ChannelAbsMax:
    """Streaming per-channel ``max |x|`` along ``axis`` (SmoothQuant's activation statistic);
    NaN/Inf are ignored and counted. Two of them merge exactly (elementwise maximum)."""

    def __init__(self, axis: int = -1) -> None:
        self.axis = axis
        self.max: np.ndarray | None = None
        self.nonfinite_count = 0

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x)
        rows = np.moveaxis(x, self.axis, 0).reshape(x.shape[self.axis], -1)
        finite = np.isfinite(rows)
        self.nonfinite_count += int(finite.size - finite.sum())
        got = np.where(finite, np.abs(rows), 0).max(axis=1, initial=0.0).astype(np.float64)
        if self.max is not None and self.max.shape != got.shape:
            raise ValueError(f"{got.shape[0]} channels on axis {self.axis}, earlier {self.max.shape[0]}")
        self.max = got if self.max is None else np.maximum(self.max, got)

    def merge(self, other: ChannelAbsMax) -> ChannelAbsMax:
        out = ChannelAbsMax(self.axis)
        parts = [p.max for p in (self, other) if p.max is not None]
        out.max = np.maximum.reduce(parts) if parts else None
        out.nonfinite_count = self.nonfinite_count + other.nonfinite_count
        return out

    @property
    def reached(self) -> bool:
        return self.max is not None


class _Tee:
    """An observer slot feeding a plan observer (None: none) and a :class:`ChannelMean`."""

    def __init__(self, inner: Any, mean: ChannelMean) -> None:
        self.inner, self.mean = inner, mean

    def update(self, x: np.ndarray) -> None:
        if self.inner is not None:
            self.inner.update(x)
        self.mean.update(x)

    @property
    def reached(self) -> bool:
        return (self.inner if self.inner is not None else self.mean).reached

    @property
    def nonfinite_count(self) -> int:
        return int((self.inner if self.inner is not None else self.mean).nonfinite_count)


def with_means(observers: Mapping[str, Any], means: Mapping[str, ChannelMean]) -> dict[str, Any]:
    """``observers`` with every tensor of ``means`` also feeding its mean."""
    out = dict(observers)
    for name, mean in means.items():
        out[name] = _Tee(out.get(name), mean)
    return out


def without_means(observers: Mapping[str, Any]) -> dict[str, Any]:
    """The plan's observers of a run made with :func:`with_means`."""
    return {
        name: obs.inner if isinstance(obs, _Tee) else obs
        for name, obs in observers.items()
        if not (isinstance(obs, _Tee) and obs.inner is None)
    }


__all__ = ["ChannelAbsMax", "ChannelMean", "with_means", "without_means"]
