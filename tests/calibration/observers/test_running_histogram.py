"""The running histogram shared by the histogram observers: loading its state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from onnxq.calibration.observers import HistogramObserver


def _state() -> dict:
    obs = HistogramObserver(bins=8)
    obs.update(np.array([0.0, 1.0, 2.0, np.nan], np.float32))
    return json.loads(json.dumps(obs.state_dict()))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bins": 0}, r"bins must be an int in \[1, 65536\]"),
        ({"axis": 1}, "'axis' must be null"),
        ({"histogram": [1.0] * 7}, "'histogram' must be a list of 8 counts, got 7"),
        ({"histogram": [-1.0] * 8}, "'histogram' counts must be non-negative"),
        ({"histogram": ["1"] * 8}, "'histogram' must hold numbers only"),
        ({"min": 3.0}, "'min' must not exceed 'max'"),
        ({"min": -1e300}, "'min' must be a float32 number"),
        ({"max": None}, "'min' and 'max' must both be numbers"),
        ({"histogram": [0.0] * 8}, "'histogram' has no counts"),
        ({"nonfinite": -1}, "'nonfinite' must be a non-negative int"),
        ({"extra": 1}, "unknown field 'extra'"),
    ],
)
def test_a_bad_state_field_is_a_one_line_error_naming_it(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        HistogramObserver.from_state_dict(_state() | change)
    assert "\n" not in str(info.value)


def test_a_missing_state_field_is_named() -> None:
    state = _state()
    del state["upsample_rate"]
    with pytest.raises(ValueError, match="lacks field 'upsample_rate'"):
        HistogramObserver.from_state_dict(state)
