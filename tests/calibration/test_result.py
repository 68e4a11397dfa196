"""CalibrationResult: a value that merges, saves and loads; bad files are one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from onnxq.calibration.observers import HistogramObserver, MinMaxObserver, MovingAverageMinMaxObserver
from onnxq.calibration.result import CalibrationResult
from onnxq.errors import CalibrationDataError


def _result(values: dict[str, np.ndarray], n: int) -> CalibrationResult:
    observers = {}
    for name, v in values.items():
        observers[name] = HistogramObserver(bins=64) if name.startswith("h") else MinMaxObserver()
        observers[name].update(v)
    return CalibrationResult(observers, n)


def test_merge_equals_one_stream_for_minmax_and_keeps_both_inputs() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 50)).astype(np.float32) * [[1.0], [3.0]]
    first, second = _result({"x": a, "only_a": a}, 10), _result({"x": b, "only_b": b}, 6)
    merged = first.merge(second)
    assert merged.num_samples == 16 and set(merged.observers) == {"x", "only_a", "only_b"}
    both = _result({"x": np.concatenate([a, b])}, 16).observers["x"]
    assert (float(merged.observers["x"].min_val), float(merged.observers["x"].max_val)) == (
        float(both.min_val), float(both.max_val))  # fmt: skip
    assert float(first.observers["x"].max_val) == float(a.max())  # the inputs did not change
    merged.observers["only_a"].update(np.float32([100.0]))
    assert float(first.observers["only_a"].max_val) == float(a.max())  # copies, not shared


def test_unreached_and_nonfinite_are_derived_from_the_observers() -> None:
    result = _result({"x": np.float32([np.nan, 1.0, np.inf]), "y": np.float32([np.nan])}, 1)
    assert result.unreached == {"y"} and result.nonfinite == {"x": 2, "y": 1}


def test_merge_of_different_observer_kinds_names_the_tensor() -> None:
    a = _result({"x": np.float32([1.0])}, 1)
    b = CalibrationResult({"x": MovingAverageMinMaxObserver()}, 1)
    with pytest.raises(CalibrationDataError, match="cannot merge the observers of tensor 'x'"):
        a.merge(b)


def test_save_and_load_round_trip_and_the_file_is_plain_json(tmp_path: Path) -> None:
    result = _result({"x": np.float32([-1.0, 2.0]), "h": np.linspace(0, 1, 100, dtype=np.float32)}, 3)
    path = result.save(tmp_path / "calib.json")
    doc = json.loads(path.read_text())
    assert doc["version"] == 1 and doc["num_samples"] == 3 and set(doc["observers"]) == {"x", "h"}
    back = CalibrationResult.load(path)
    assert back.state_dict() == result.state_dict()
    assert [p.name for p in tmp_path.iterdir()] == ["calib.json"]  # no temporary file left


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "not a calibration result: expected an object"),
        ('{"version": 7}', "calibration state version 7 is not supported"),
        ('{"version": 1, "num_samples": 1}', "'observers' must be an object"),
        ('{"version": 1, "num_samples": -1, "observers": {}}', "'num_samples': num_samples must be"),
        (
            '{"version": 1, "num_samples": 1, "observers": {"x": {"observer": "kl"}}}',
            "observer of tensor 'x'",
        ),
        (
            '{"version": 1, "num_samples": 1, "observers": {"x": {"observer": "minmax"}}}',
            "observer of tensor 'x'",
        ),
        (b"\xff\xfe", "not valid JSON (not UTF-8 text)"),
    ],
)
def test_bad_files_are_one_line_errors_naming_the_file(
    tmp_path: Path, content: str | bytes, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(CalibrationDataError) as info:
        CalibrationResult.load(path)
    text = str(info.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


def test_load_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(CalibrationDataError, match="does not exist"):
        CalibrationResult.load(tmp_path / "missing.json")
    with pytest.raises(CalibrationDataError, match="not a regular file"):
        CalibrationResult.load(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(CalibrationDataError, match="not a regular file"):
        CalibrationResult.load(fifo)  # would block forever if opened


# --- the calibration file's JSON Schema (schemas/calibration.schema.json) ---------------------

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "calibration.schema.json"


def _schema_validator():  # type: ignore[no-untyped-def]
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_lists_every_registered_observer() -> None:
    from onnxq.calibration.observers import observer_names

    schema = json.loads(SCHEMA.read_text())
    assert set(schema["$defs"]) - {"observer"} == set(observer_names())


@pytest.mark.parametrize("reached", [True, False])
def test_every_observers_state_validates(reached: bool) -> None:
    from onnxq.calibration.observers import make_observer, observer_names, observer_supports_axis

    validator = _schema_validator()
    observers = {}
    required = {"fixed_qparams": {"scale": 1 / 256, "zero_point": 0}}
    for name in observer_names():
        axis = 1 if observer_supports_axis(name) else None
        obs = make_observer(name, axis, **required.get(name, {}))
        if reached:
            obs.update(np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32))
        observers[f"t_{name}"] = obs
    state = json.loads(json.dumps(CalibrationResult(observers, 2 if reached else 0).state_dict()))
    errors = sorted(validator.iter_errors(state), key=str)
    assert not errors, errors[0].message


def test_schema_refuses_what_load_refuses() -> None:
    validator = _schema_validator()
    assert not validator.is_valid({"version": 2, "num_samples": 0, "observers": {}})
    assert not validator.is_valid({"version": 1, "num_samples": -1, "observers": {}})
    unknown = {"t": {"observer": "nonesuch"}}
    assert not validator.is_valid({"version": 1, "num_samples": 0, "observers": unknown})
