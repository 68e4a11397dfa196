"""Every registered observer honours the Observer protocol: update, merge, qparams, JSON state,
NaN/Inf counting, constant and all-zero tensors, and a state whose size does not grow."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from onnxq.calibration.observers import Observer, make_observer, observer_from_state, observer_names
from onnxq.calibration.observers.fixed_qparams import SIGMOID_SOFTMAX

#: Observers that need arguments, and what to give them here.
_ARGS: dict[str, dict[str, Any]] = {"fixed_qparams": SIGMOID_SOFTMAX}
#: Observers whose parameters do not depend on the data.
_DATA_INDEPENDENT = {"fixed_qparams"}
_SCHEMES = [("uint8", False, False), ("int8", True, False), ("uint8", False, True)]


def _make(name: str) -> Observer:
    return make_observer(name, **_ARGS.get(name, {}))


def _same_qparams(a: Observer, b: Observer) -> None:
    for scheme in _SCHEMES:
        qa, qb = a.qparams(*scheme), b.qparams(*scheme)
        assert float(qa.scale) == float(qb.scale) and int(qa.zero_point) == int(qb.zero_point), scheme


@pytest.mark.parametrize("name", observer_names())
def test_registered_observer_follows_the_protocol(name: str) -> None:
    rng = np.random.default_rng(0)
    a, b = _make(name), _make(name)
    assert isinstance(a, Observer)
    assert not a.reached and a.nonfinite_count == 0
    a.update(rng.normal(size=(8, 16)).astype(np.float32))
    b.update(np.array([np.nan, 5.0, -7.0], np.float32))
    merged = a.merge(b)
    assert type(merged) is type(a) and merged is not a and merged is not b
    assert merged.reached and merged.nonfinite_count == 1
    qp = merged.qparams("uint8", False, False)
    assert qp.axis is None and float(qp.scale) > 0
    if name not in _DATA_INDEPENDENT:  # the far values of b widen the merged range beyond what a saw
        assert float(qp.scale) > float(a.qparams("uint8", False, False).scale)
    state = json.loads(json.dumps(merged.state_dict(), allow_nan=False))
    assert state["observer"] == name
    back = observer_from_state(state)
    assert type(back) is type(merged)
    _same_qparams(back, merged)


#: Moving averages have no exact merge (the update-weighted mean of the two; see test_minmax).
_INEXACT_MERGE = {"moving_average_minmax", "moving_average_per_channel_minmax"}


@pytest.mark.parametrize("name", sorted(set(observer_names()) - _INEXACT_MERGE))
def test_merge_of_halves_equals_one_observer_fed_everything(name: str) -> None:
    """Exact, including the histogram observers: each half's first batch holds the global min
    and max, so neither re-bins (with other ranges re-binning moves mass within a bin; each
    histogram observer's tests bound that)."""
    rng = np.random.default_rng(3)
    data = [rng.normal(size=5_000).astype(np.float32) for _ in range(6)]
    ends = np.array([-6.0, 7.0], np.float32)
    data[0], data[3] = np.concatenate([ends, data[0]]), np.concatenate([ends, data[3]])
    data[4][:2] = [np.nan, np.inf]
    a, b, one = _make(name), _make(name), _make(name)
    for i, x in enumerate(data):
        (a if i < 3 else b).update(x)
        one.update(x)
    merged = a.merge(b)
    assert merged.nonfinite_count == one.nonfinite_count == 2
    _same_qparams(merged, one)
    assert merged.state_dict() == one.state_dict()


@pytest.mark.parametrize("name", observer_names())
def test_nonfinite_values_are_ignored_and_counted(name: str) -> None:
    x = np.random.default_rng(1).normal(size=200).astype(np.float32)
    dirty = np.concatenate([x[:50], [np.nan, np.inf, -np.inf], x[50:]]).astype(np.float32)
    clean, obs = _make(name), _make(name)
    clean.update(x)
    obs.update(dirty)
    assert obs.nonfinite_count == 3
    _same_qparams(obs, clean)
    empty = _make(name)
    empty.update(np.full(7, np.nan, np.float32))
    assert not empty.reached and empty.nonfinite_count == 7


@pytest.mark.parametrize("name", observer_names())
@pytest.mark.parametrize("value", [0.0, 3.5, -2.0])
def test_constant_tensor_gives_valid_qparams(name: str, value: float) -> None:
    obs = _make(name)
    obs.update(np.full((3, 40), value, np.float32))
    assert obs.reached
    for scheme in _SCHEMES:
        qp = obs.qparams(*scheme)
        assert np.isfinite(float(qp.scale)) and float(qp.scale) > 0, scheme


@pytest.mark.parametrize("name", observer_names())
def test_state_size_does_not_grow_with_the_number_of_samples(name: str) -> None:
    def leaves(v: Any) -> int:
        if isinstance(v, dict):
            return sum(leaves(e) for e in v.values())
        return sum(leaves(e) for e in v) if isinstance(v, list) else 1

    rng = np.random.default_rng(2)
    obs = _make(name)
    obs.update(rng.normal(size=(4, 64)).astype(np.float32))
    size = leaves(obs.state_dict())
    for i in range(200):
        obs.update((rng.normal(size=(4, 64)) * (1 + i / 50)).astype(np.float32))
    # a histogram keeps the cells between its first and last count: at most its fixed grid
    cap = size + getattr(obs, "_cells", np.empty(0)).size
    assert leaves(obs.state_dict()) <= cap


def test_unknown_observer_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"unknown observer 'nope'.*histogram.*minmax"):
        make_observer("nope")


def test_state_of_an_unknown_observer_is_rejected() -> None:
    with pytest.raises(KeyError, match="unknown observer 'nope'"):
        observer_from_state({"observer": "nope"})
