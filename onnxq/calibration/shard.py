"""Shards of a calibration data set: ``--shard i/N`` calibrates on every N-th sample.

Shard ``i`` of ``N`` takes the samples whose position in the whole data set is ``i`` modulo
``N``, counting samples the way the data source holds them: row by row along axis 0 for sources
whose arrays hold samples on axis 0 (``.npz`` files, directories of arrays, image folders), and
item by item for a Python iterable whose dicts are runs of the model as given (each dict is then
one unit, whatever its batch size). The ``N`` shards partition the data set: every sample is in
exactly one of them, so merging the ``N`` calibration results (:meth:`CalibrationResult.merge`)
gives what one run over everything gives, exactly where the observers merge exactly (min/max and
histograms).

Samples are selected before they are regrouped into runs of the model, so shards of a model with
a dynamic batch dimension are fed in runs like a whole run; with a static batch size ``B`` each
shard drops its own last incomplete run (a warning says so), and the shards then hold fewer
samples than one run over everything: give every shard a multiple of ``B`` samples.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from onnxq.calibration.data import InputSpec, matches_as_given
from onnxq.errors import ConfigError

#: Most shards a data set may be cut into.
MAX_SHARDS = 1 << 20

_SPEC = re.compile(r"\s*(\d{1,7})\s*/\s*(\d{1,7})\s*")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        for name, v in (("index", self.index), ("count", self.count)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise ConfigError(f"shard {name} must be an int, got {v!r}")
        if not 1 <= self.count <= MAX_SHARDS:
            raise ConfigError(f"shard count must be in [1, {MAX_SHARDS}], got {self.count}")
        if not 0 <= self.index < self.count:
            raise ConfigError(f"shard index must be in [0, {self.count - 1}], got {self.index}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"i/N"`` (e.g. ``"0/4"``): shard ``i`` of ``N``."""
        m = _SPEC.fullmatch(text)
        if m is None:
            raise ConfigError(f"shard {text!r}: expected i/N with 0 <= i < N, e.g. 0/4")
        return cls(int(m.group(1)), int(m.group(2)))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def rows(self, first: int, n: int) -> np.ndarray:
        """The positions among ``n`` samples numbered from ``first`` that belong to this shard."""
        start = (self.index - first) % self.count
        return np.arange(start, n, self.count)


def select_shard(
    specs: Sequence[InputSpec],
    batches: Iterable[Mapping[str, np.ndarray]],
    shard: Shard,
    *,
    as_given: bool,
) -> Iterator[dict[str, np.ndarray]]:
    """The part of validated ``batches`` that belongs to ``shard`` (see the module docstring).

    A batch that fits the model as given (``as_given`` sources only) is one unit; any other holds
    samples on axis 0 of every array, and its rows of the shard are taken. Empty selections are
    skipped.
    """
    position = 0
    for batch in batches:
        if as_given and matches_as_given(specs, batch):
            if position % shard.count == shard.index:
                yield dict(batch)
            position += 1
            continue
        n = int(np.shape(next(iter(batch.values())))[0]) if batch else 0
        rows = shard.rows(position, n)
        position += n
        if rows.size == n:
            yield dict(batch)
        elif rows.size:
            yield {k: np.asarray(v)[rows] for k, v in batch.items()}


__all__ = ["MAX_SHARDS", "Shard", "select_shard"]
