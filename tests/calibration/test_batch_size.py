"""The batch size a user picks does not change MinMax-family results; moving averages depend on the
runs (docs/calibration-data.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest

from onnxq.calibration.engine import calibrate
from onnxq.calibration.observers import make_observer
from onnxq.calibration.sources import load_calibration_data

MODEL = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[N, 3, 6, 6] x) => (float[N, 5] y) <float[4, 3, 3, 3] w, float[4] b, float[144, 5] m> {
  c = Conv <pads = [1, 1, 1, 1]> (x, w, b)
  r = Relu(c)
  f = Flatten(r)
  y = MatMul(f, m)
}
"""
SAMPLES = 24
OBSERVED = {"x": None, "c": 1, "r": 1, "y": None}  # tensor: per-channel axis (None: per tensor)


def _model() -> onnx.ModelProto:
    model = onnx.parser.parse_model(MODEL)
    rng = np.random.default_rng(0)
    for name, shape in (("w", (4, 3, 3, 3)), ("b", (4,)), ("m", (144, 5))):
        model.graph.initializer.append(
            onnx.numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)
        )
    return model


def _samples() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(SAMPLES, 3, 6, 6)).astype(np.float32) * 3


def _chunks(x: np.ndarray, size: int) -> Iterator[np.ndarray]:
    return (x[i : i + size] for i in range(0, len(x), size))


def _ranges(
    source: object, observer: str
) -> dict[str, tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]]:
    observers = {
        name: make_observer(observer, axis=axis)
        if observer == "per_channel_minmax"
        else make_observer(observer)
        for name, axis in OBSERVED.items()
    }
    result = calibrate(_model(), observers, source, progress=False)  # type: ignore[arg-type]
    assert result.num_samples == SAMPLES
    out = {}
    for name, obs in result.observers.items():
        q = obs.qparams("uint8", False, False)  # type: ignore[attr-defined]
        out[name] = (obs.min_val, obs.max_val, (q.scale, q.zero_point))  # type: ignore[attr-defined]
    return out


def _assert_identical(a: dict, b: dict) -> None:  # type: ignore[type-arg]
    for name in OBSERVED:
        for got, want in zip(a[name][:2] + a[name][2], b[name][:2] + b[name][2], strict=True):
            np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.mark.parametrize("observer", ["minmax", "per_channel_minmax"])
def test_minmax_qparams_do_not_depend_on_the_batch_size(tmp_path: Path, observer: str) -> None:
    x = _samples()
    reference = _ranges([{"x": x}], observer)
    for size in (1, 3, 8, 5):
        _assert_identical(
            _ranges([{"x": c} for c in _chunks(x, size)], observer), reference
        )  # dicts, as given
        _assert_identical(_ranges([(c, np.zeros(len(c))) for c in _chunks(x, size)], observer), reference)
        folder = tmp_path / f"npz{size}"
        folder.mkdir()
        for i, c in enumerate(_chunks(x, size)):
            np.savez(folder / f"{i:03d}.npz", x=c)
        _assert_identical(_ranges(load_calibration_data(folder), observer), reference)


def test_moving_average_follows_the_runs_not_the_files(tmp_path: Path) -> None:
    x = _samples()
    as_given = [_ranges([{"x": c} for c in _chunks(x, size)], "moving_average_minmax") for size in (1, 8)]
    assert not np.array_equal(as_given[0]["r"][1], as_given[1]["r"][1])  # each dict is a run
    from_files = []
    for size in (1, 8):  # files are regrouped into runs by the engine: their size does not matter
        folder = tmp_path / f"npz{size}"
        folder.mkdir()
        for i, c in enumerate(_chunks(x, size)):
            np.savez(folder / f"{i:03d}.npz", x=c)
        from_files.append(_ranges(load_calibration_data(folder), "moving_average_minmax"))
    _assert_identical(from_files[0], from_files[1])
