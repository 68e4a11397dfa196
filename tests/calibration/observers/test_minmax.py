"""Range observers: exact min/max, the moving-average formula, per-channel axes, merge, NaN/Inf."""

from __future__ import annotations

import json

import numpy as np
import pytest

from onnxq.calibration.observers import (
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    PerChannelMinMaxObserver,
    make_observer,
    observer_names,
)
from onnxq.qparams import choose_qparams


def _batches(seed: int = 0, n: int = 5, shape: tuple[int, ...] = (4, 3, 6)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=shape) * (i + 1) + i).astype(np.float32) for i in range(n)]


def test_registry_lists_every_observer_by_name() -> None:
    assert {"minmax", "per_channel_minmax", "moving_average_minmax", "histogram"} <= set(observer_names())
    assert isinstance(make_observer("minmax"), MinMaxObserver)
    assert isinstance(make_observer("per_channel_minmax", axis=0), PerChannelMinMaxObserver)
    obs = make_observer("moving_average_minmax", averaging_constant=0.5)
    assert isinstance(obs, MovingAverageMinMaxObserver)
    assert obs.averaging_constant == 0.5


def test_minmax_is_exact_over_batches() -> None:
    data = _batches()
    obs = MinMaxObserver()
    for b in data:
        obs.update(b)
    everything = np.concatenate([b.ravel() for b in data])
    assert float(obs.min_val) == float(everything.min())
    assert float(obs.max_val) == float(everything.max())
    assert obs.reached and obs.nonfinite_count == 0


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_per_channel_minmax_matches_numpy_on_axis(axis: int) -> None:
    data = _batches(seed=1)
    obs = PerChannelMinMaxObserver(axis=axis)
    for b in data:
        obs.update(b)
    stacked = np.stack(data)  # the batches' own axis is axis + 1 here (axis -1 stays -1)
    reduce = tuple(a for a in range(stacked.ndim) if a != (axis + 1 if axis >= 0 else stacked.ndim - 1))
    np.testing.assert_array_equal(obs.min_val, stacked.min(axis=reduce))
    np.testing.assert_array_equal(obs.max_val, stacked.max(axis=reduce))
    assert obs.min_val.shape == (data[0].shape[axis],)
    qp = obs.qparams("int8", symmetric=True, reduce_range=False)
    assert qp.axis == axis and qp.scale.shape == (data[0].shape[axis],)


def test_per_channel_rejects_changed_channel_count() -> None:
    obs = MinMaxObserver(axis=1)
    obs.update(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="4 channels on axis 1, expected 3"):
        obs.update(np.zeros((2, 4), np.float32))


def test_per_channel_axis_out_of_range_raises() -> None:
    with pytest.raises(ValueError, match="axis 3 out of range for a tensor of rank 2"):
        MinMaxObserver(axis=3).update(np.zeros((2, 2), np.float32))


def test_moving_average_follows_the_formula() -> None:
    c = 0.25
    data = _batches(seed=2, n=6)
    obs = MovingAverageMinMaxObserver(averaging_constant=c)
    lo, hi = float(data[0].min()), float(data[0].max())
    for b in data[1:]:
        lo += c * (float(b.min()) - lo)
        hi += c * (float(b.max()) - hi)
    for b in data:
        obs.update(b)
    assert float(obs.min_val) == pytest.approx(lo, rel=1e-12)
    assert float(obs.max_val) == pytest.approx(hi, rel=1e-12)


def test_moving_average_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    from torch.ao.quantization import MovingAverageMinMaxObserver as TorchObserver

    data = _batches(seed=3, n=8)
    ours, ref = MovingAverageMinMaxObserver(), TorchObserver(averaging_constant=0.01)
    for b in data:
        ours.update(b)
        ref(torch.from_numpy(b))
    assert float(ours.min_val) == pytest.approx(float(ref.min_val), rel=1e-6)
    assert float(ours.max_val) == pytest.approx(float(ref.max_val), rel=1e-6)


def test_per_channel_moving_average_keeps_a_channel_until_it_is_seen() -> None:
    obs = MovingAverageMinMaxObserver(axis=0, averaging_constant=0.5)
    obs.update(np.array([[1.0, 3.0], [np.nan, np.nan]], np.float32))
    obs.update(np.array([[3.0, 5.0], [-2.0, 2.0]], np.float32))
    np.testing.assert_allclose(obs.min_val, [2.0, -2.0])  # channel 1 starts at its first data
    np.testing.assert_allclose(obs.max_val, [4.0, 2.0])
    assert obs.nonfinite_count == 2


@pytest.mark.parametrize("axis", [None, 1])
def test_merge_equals_observing_both_streams_exactly(axis: int | None) -> None:
    data = _batches(seed=4, n=6)
    a, b, both = MinMaxObserver(axis=axis), MinMaxObserver(axis=axis), MinMaxObserver(axis=axis)
    for i, x in enumerate(data):
        (a if i % 2 else b).update(x)
        both.update(x)
    merged = a.merge(b)
    np.testing.assert_array_equal(merged.min_val, both.min_val)
    np.testing.assert_array_equal(merged.max_val, both.max_val)
    assert merged.state_dict()["updates"] == 6
    # the inputs are left untouched
    assert float(np.min(a.min_val)) >= float(np.min(both.min_val))


def test_merge_with_an_empty_observer_returns_the_other_range() -> None:
    a = MinMaxObserver()
    a.update(np.array([-1.0, 2.0], np.float32))
    merged = MinMaxObserver().merge(a)
    assert (float(merged.min_val), float(merged.max_val)) == (-1.0, 2.0)


def test_merge_rejects_other_kinds_and_axes() -> None:
    with pytest.raises(TypeError):
        MinMaxObserver().merge(MovingAverageMinMaxObserver())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="axis"):
        MinMaxObserver(axis=0).merge(MinMaxObserver(axis=1))


def test_moving_average_merge_is_update_weighted_mean() -> None:
    a, b = MovingAverageMinMaxObserver(), MovingAverageMinMaxObserver()
    a.update(np.array([-1.0, 1.0], np.float32))
    for _ in range(3):
        b.update(np.array([-5.0, 9.0], np.float32))
    m = a.merge(b)
    assert float(m.min_val) == pytest.approx((1 * -1.0 + 3 * -5.0) / 4)
    assert float(m.max_val) == pytest.approx((1 * 1.0 + 3 * 9.0) / 4)


def test_nonfinite_values_are_ignored_and_counted() -> None:
    obs = MinMaxObserver()
    obs.update(np.array([1.0, np.nan, -np.inf, 3.0, np.inf, -2.0], np.float32))
    obs.update(np.array([np.nan, 0.5], np.float32))
    assert (float(obs.min_val), float(obs.max_val)) == (-2.0, 3.0)
    assert obs.nonfinite_count == 4


def test_only_nonfinite_data_leaves_observer_unreached() -> None:
    obs = MinMaxObserver()
    obs.update(np.full((3, 3), np.nan, np.float32))
    obs.update(np.zeros((0, 3), np.float32))
    assert not obs.reached
    assert obs.nonfinite_count == 9
    qp = obs.qparams("uint8", symmetric=False, reduce_range=False)
    assert float(qp.scale) == 1.0  # the choose_qparams default for an empty range


def test_qparams_delegate_to_choose_qparams() -> None:
    obs = MinMaxObserver()
    obs.update(np.array([-0.5, 3.7], np.float32))
    for dtype, sym, rr in [("uint8", False, True), ("int8", True, False), ("uint8", False, False)]:
        got = obs.qparams(dtype, sym, rr)
        want = choose_qparams(-0.5, np.float32(3.7), dtype, sym, rr)
        assert float(got.scale) == float(want.scale)
        assert int(got.zero_point) == int(want.zero_point)
    qp = obs.qparams("uint8", False, False)
    assert float(qp.scale) == pytest.approx((3.7 + 0.5) / 255, rel=1e-6)
    assert int(qp.zero_point) == round(0.5 / float(qp.scale))


def test_integer_input_is_observed_as_float() -> None:
    obs = MinMaxObserver()
    obs.update(np.array([[3, -7], [12, 0]], np.int64))
    assert (float(obs.min_val), float(obs.max_val)) == (-7.0, 12.0)


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [(MinMaxObserver, {}), (MinMaxObserver, {"axis": 0}), (MovingAverageMinMaxObserver, {"axis": 1})],
)
def test_state_dict_round_trips_through_json(cls: type, kwargs: dict) -> None:
    obs = cls(**kwargs)
    obs.update(np.array([[1.0, np.nan], [-4.0, 2.5]], np.float32))
    text = json.dumps(obs.state_dict(), allow_nan=False)
    back = cls.from_state_dict(json.loads(text))
    np.testing.assert_array_equal(back.min_val, obs.min_val)
    np.testing.assert_array_equal(back.max_val, obs.max_val)
    assert back.nonfinite_count == 1 and back.axis == obs.axis


def test_state_dict_of_an_empty_observer_is_strict_json() -> None:
    state = MinMaxObserver().state_dict()
    assert json.loads(json.dumps(state, allow_nan=False))["min"] is None
    assert not MinMaxObserver.from_state_dict(state).reached


def test_bad_averaging_constant_is_rejected() -> None:
    with pytest.raises(ValueError, match="averaging_constant"):
        MovingAverageMinMaxObserver(averaging_constant=1.5)


def test_a_state_beyond_float32_is_refused() -> None:
    # the fuzzer's find: min -1e308 passed as finite, then the scale overflowed to inf
    state = MinMaxObserver().state_dict() | {"min": -1e308, "max": 1.0, "updates": 1}
    with pytest.raises(ValueError, match="min and max must be float32 values"):
        MinMaxObserver.from_state_dict(state)
    ok = MinMaxObserver.from_state_dict(state | {"min": -3e38})
    assert np.isfinite(ok.qparams("uint8", False, False).scale).all()
