"""Every registered observer honours the Observer protocol: update, merge, qparams, JSON state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from onnxq.calibration.observers import Observer, make_observer, observer_from_state, observer_names


@pytest.mark.parametrize("name", observer_names())
def test_registered_observer_follows_the_protocol(name: str) -> None:
    rng = np.random.default_rng(0)
    a, b = make_observer(name), make_observer(name)
    assert isinstance(a, Observer)
    assert not a.reached and a.nonfinite_count == 0
    a.update(rng.normal(size=(8, 16)).astype(np.float32))
    b.update(np.array([np.nan, 5.0, -7.0], np.float32))
    merged = a.merge(b)
    assert type(merged) is type(a) and merged is not a and merged is not b
    assert merged.reached and merged.nonfinite_count == 1
    qp = merged.qparams("uint8", False, False)
    assert qp.axis is None and float(qp.scale) > 0
    # the far values of b widen the merged range beyond what a saw
    assert float(qp.scale) > float(a.qparams("uint8", False, False).scale)
    state = json.loads(json.dumps(merged.state_dict(), allow_nan=False))
    assert state["observer"] == name
    back = observer_from_state(state)
    assert type(back) is type(merged)
    back_qp = back.qparams("uint8", False, False)
    assert float(back_qp.scale) == float(qp.scale) and int(back_qp.zero_point) == int(qp.zero_point)


def test_unknown_observer_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"unknown observer 'nope'.*histogram.*minmax"):
        make_observer("nope")


def test_state_of_an_unknown_observer_is_rejected() -> None:
    with pytest.raises(KeyError, match="unknown observer 'nope'"):
        observer_from_state({"observer": "nope"})
