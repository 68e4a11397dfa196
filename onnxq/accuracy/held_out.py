"""The held-out samples an accuracy budget is measured on, and the models' outputs on them.

Without held-out data of its own, the calibration data is split: sample ``i`` (counted over the
whole data, in order) is held out when ``i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1`` (every 5th
sample, 20%), and the others calibrate. Interleaving keeps both parts alike when the files are
sorted (by class, by recording). The samples are read into memory once: each trial model runs on
the same held-out inputs, and the fp32 outputs are computed once.

A run of several samples must hold them on axis 0 of every input and output; an input without a
sample axis of its own (a recurrent state, a sample rate) is one sample per run, as calibration
feeds it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
import onnx_ir as ir

from onnxq.compare.runner import model_runs
from onnxq.errors import CalibrationDataError
from onnxq.runtime import make_session

#: One sample in this many is held out when no held-out data is given.
HOLD_OUT_EVERY = 5

Feed = dict[str, np.ndarray]
#: Runs of the model: each feed with the number of samples it holds.
Runs = list[tuple[Feed, int]]


def split_runs(model: ir.Model, data: Iterable[object]) -> tuple[Runs, Runs]:
    """``data``'s runs of ``model`` split into calibration runs and held-out runs (module docstring)."""
    calib: Runs = []
    held: Runs = []
    seen = 0
    for feed, n in model_runs(model, data, None):
        held_out = (np.arange(seen, seen + n) % HOLD_OUT_EVERY) == HOLD_OUT_EVERY - 1
        seen += n
        if n == 1:
            (held if held_out[0] else calib).append((feed, 1))
            continue
        bad = next((k for k, v in feed.items() if np.ndim(v) == 0 or v.shape[0] != n), None)
        if bad is not None:
            raise CalibrationDataError(
                f"input {bad!r} does not hold the run's {n} samples on axis 0: give held-out data of its own"
            )
        for part, keep in ((held, held_out), (calib, ~held_out)):
            if keep.any():
                part.append(({k: v[keep] for k, v in feed.items()}, int(keep.sum())))
    if not held:
        raise CalibrationDataError(
            f"{seen} sample(s): too few to hold every {HOLD_OUT_EVERY}th out; give more data or held-out data"
        )
    return calib, held


def read_runs(model: ir.Model, data: Iterable[object]) -> Runs:
    """Every run of ``data`` (held-out data given apart), in memory."""
    runs = list(model_runs(model, data, None))
    if not runs:
        raise CalibrationDataError("the held-out data holds no samples")
    return runs


def run_outputs(model: ir.Model | onnx.ModelProto, runs: Runs, what: str) -> list[np.ndarray]:
    """``model``'s outputs on every run, each output's runs joined on axis 0 (graph order)."""
    session = make_session(model, what=what, optimize=False)
    names = [o.name for o in session.get_outputs()]
    parts: list[list[np.ndarray]] = [[] for _ in names]
    for feed, _ in runs:
        for part, out in zip(parts, session.run(names, feed), strict=True):
            part.append(np.asarray(out) if np.ndim(out) else np.reshape(out, (1,)))
    joined = [np.concatenate(p, axis=0) for p in parts]
    samples = sum(n for _, n in runs)
    bad = next((n for n, o in zip(names, joined, strict=True) if len(o) != samples), None)
    if bad is not None:
        raise CalibrationDataError(f"output {bad!r} does not hold the samples on axis 0: no metric reads it")
    return joined


__all__ = ["HOLD_OUT_EVERY", "Runs", "read_runs", "run_outputs", "split_runs"]
