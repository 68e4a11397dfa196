"""The outcome of calibration as a value: observer states by tensor name, and the sample count.

A :class:`CalibrationResult` is what ``resolve_qparams`` turns into quantization parameters. It
can be saved to a JSON file and loaded back (``save`` / ``load``: the same converted model, byte
for byte), and two results over different data merge into one (``merge``: shards of a data set
calibrated apart, on other processes or machines), exactly where the observers' maths allows it
(min/max and histograms; a moving average merges as an update-weighted mean). What calibration
could not see is derived from the observers: tensors never reached (no finite value, or only
inside an ``If``/``Loop`` body) and the NaN/Inf counts.

The file holds ``{"version": 1, "num_samples": n, "unreached": [...], "nonfinite": {...},
"observers": {tensor: observer state}}``; ``unreached`` and ``nonfinite`` are there for people
reading the file and are recomputed on load.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onnxq.calibration.observers.base import Observer, observer_from_state
from onnxq.errors import CalibrationDataError, OnnxqError
from onnxq.io import read_json_file, write_text_atomic

STATE_VERSION = 1
#: Calibration files larger than this are refused before they are read.
MAX_FILE_BYTES = 1 << 30


@dataclass(frozen=True)
class CalibrationResult:
    """Observers after calibration, keyed by tensor name, and how many samples they saw."""

    observers: Mapping[str, Observer] = field(default_factory=dict)
    num_samples: int = 0

    def __post_init__(self) -> None:
        n = self.num_samples
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"num_samples must be a non-negative int, got {self.num_samples!r}")
        object.__setattr__(self, "observers", dict(self.observers))

    @property
    def unreached(self) -> frozenset[str]:
        """Observed tensors no calibration sample reached with a finite value."""
        return frozenset(name for name, obs in self.observers.items() if not obs.reached)

    @property
    def nonfinite(self) -> dict[str, int]:
        """NaN/Inf values ignored, per tensor (tensors without any are left out)."""
        return {name: obs.nonfinite_count for name, obs in self.observers.items() if obs.nonfinite_count}

    def copy(self) -> CalibrationResult:
        """An independent copy (observers are mutable while calibration feeds them)."""
        return CalibrationResult(copy.deepcopy(dict(self.observers)), self.num_samples)

    def merge(self, other: CalibrationResult) -> CalibrationResult:
        """The result of calibrating on both data sets; neither ``self`` nor ``other`` changes.

        Tensors observed by both are merged by their observers (which must be of the same kind and
        settings); a tensor observed by one only is taken as it is.
        """
        merged: dict[str, Observer] = {}
        for name in (*self.observers, *(n for n in other.observers if n not in self.observers)):
            mine, theirs = self.observers.get(name), other.observers.get(name)
            if mine is not None and theirs is not None:
                try:
                    merged[name] = mine.merge(theirs)
                except (TypeError, ValueError) as e:
                    raise CalibrationDataError(
                        f"cannot merge the observers of tensor {name!r}: {e}"
                    ) from None
            else:
                merged[name] = copy.deepcopy(mine if mine is not None else theirs)  # type: ignore[arg-type]
        return CalibrationResult(merged, self.num_samples + other.num_samples)

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (a calibration table): every observer's state by tensor name."""
        return {
            "version": STATE_VERSION,
            "num_samples": self.num_samples,
            "unreached": sorted(self.unreached),
            "nonfinite": dict(sorted(self.nonfinite.items())),
            "observers": {name: obs.state_dict() for name, obs in self.observers.items()},
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> CalibrationResult:
        """Inverse of :meth:`state_dict`; raises ``ValueError`` naming what is wrong."""
        if not isinstance(state, Mapping):
            raise ValueError(f"expected an object, got {type(state).__name__}")
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"calibration state version {state.get('version')!r} is not supported")
        observers = state.get("observers")
        if not isinstance(observers, Mapping):
            raise ValueError("'observers' must be an object of tensor name to observer state")
        rebuilt: dict[str, Observer] = {}
        for name, obs_state in observers.items():
            try:
                rebuilt[str(name)] = observer_from_state(obs_state)
            except (KeyError, TypeError, ValueError, OverflowError, AttributeError, OnnxqError) as e:
                message = e.args[0] if isinstance(e, KeyError) and e.args else e
                raise ValueError(f"observer of tensor {name!r}: {message}") from None
        try:
            return cls(rebuilt, state.get("num_samples"))  # type: ignore[arg-type]
        except ValueError as e:
            raise ValueError(f"'num_samples': {e}") from None

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the result as JSON to ``path``, atomically."""
        return write_text_atomic(path, json.dumps(self.state_dict(), allow_nan=False) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CalibrationResult:
        """Read a result written by :meth:`save`; a bad file is a one-line CalibrationDataError."""
        state = read_json_file(path, "calibration result file", CalibrationDataError, MAX_FILE_BYTES)
        try:
            return cls.from_state_dict(state)
        except (TypeError, ValueError) as e:
            raise CalibrationDataError(f"{path}: not a calibration result: {e}") from None


__all__ = ["CalibrationResult"]
