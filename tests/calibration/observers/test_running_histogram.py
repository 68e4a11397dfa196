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
        ({"bins": 0}, r"bins must be an int in \[2, 16384\]"),
        ({"axis": 1}, "'axis' must be null"),
        ({"cells": [1.0] * 65}, "'cells' must be a list of at most 64 counts, got 65"),
        ({"cells": [-1.0] * 8}, "'cells' counts must be non-negative"),
        ({"cells": ["1"] * 8}, "'cells' must hold numbers only"),
        ({"cells_offset": 60}, r"'cells' \(\d+ from 60\) reach beyond the cells"),
        ({"cells_offset": -1}, "'cells_offset' must be a non-negative int"),
        ({"min": 3.0}, "'min' must not exceed 'max'"),
        ({"min": -1e300}, "'min' must be a float32 number"),
        ({"max": None}, "'min' and 'max' must both be numbers"),
        ({"cells": [0.0] * 8}, "'cells' has no counts"),
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
    del state["cells_offset"]
    with pytest.raises(ValueError, match="lacks field 'cells_offset'"):
        HistogramObserver.from_state_dict(state)
