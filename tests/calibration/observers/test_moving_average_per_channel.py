"""MovingAveragePerChannelMinMaxObserver: PyTorch agreement, per-channel merge, state, NaN/Inf, arguments."""

from __future__ import annotations

import json

import numpy as np
import pytest

from onnxq.calibration.observers import (
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    make_observer,
)


def _batches(seed: int = 0, n: int = 6, shape: tuple[int, ...] = (4, 5, 7)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=shape) * (i + 1) + i - 2).astype(np.float32) for i in range(n)]


# (our dtype, symmetric, reduce_range) -> torch's observer arguments for the same integer grid
_TORCH_SCHEMES = {
    ("uint8", False, False): {"dtype": "quint8", "qscheme": "per_channel_affine"},
    ("uint8", False, True): {"dtype": "quint8", "qscheme": "per_channel_affine", "reduce_range": True},
    ("int8", True, False): {
        "dtype": "qint8",
        "qscheme": "per_channel_symmetric",
        "quant_min": -127,  # onnxq's symmetric int8 is the narrow range
        "quant_max": 127,
    },
}


@pytest.mark.filterwarnings("ignore:Please use quant_min and quant_max")
@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("scheme", sorted(_TORCH_SCHEMES))
def test_matches_torch_per_channel_moving_average(axis: int, scheme: tuple[str, bool, bool]) -> None:
    """Same batches, same averaging constant (0.01): min/max to float32 rounding (rtol 1e-6),
    scale rtol 1e-6 (we compute it in float64, torch in float32), zero point exactly."""
    torch = pytest.importorskip("torch")
    from torch.ao.quantization import MovingAveragePerChannelMinMaxObserver as TorchObserver

    kwargs = dict(_TORCH_SCHEMES[scheme])
    kwargs["dtype"] = getattr(torch, kwargs["dtype"])
    kwargs["qscheme"] = getattr(torch, kwargs["qscheme"])
    ref = TorchObserver(averaging_constant=0.01, ch_axis=axis, **kwargs)
    ours = MovingAveragePerChannelMinMaxObserver(axis=axis)
    for b in _batches(seed=axis):
        ours.update(b)
        ref(torch.from_numpy(b))
    np.testing.assert_allclose(ours.min_val, ref.min_val.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.max_val, ref.max_val.numpy(), rtol=1e-6)
    t_scale, t_zp = ref.calculate_qparams()
    qp = ours.qparams(*scheme)
    assert qp.axis == axis
    np.testing.assert_allclose(qp.scale, t_scale.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(qp.zero_point.astype(np.int64), t_zp.numpy())


def test_default_averaging_constant_and_first_batch_are_torchs() -> None:
    obs = MovingAveragePerChannelMinMaxObserver(axis=0)
    assert obs.averaging_constant == 0.01
    obs.update(np.array([[1.0, 3.0], [-2.0, 0.5]], np.float32))
    np.testing.assert_array_equal(obs.min_val, [1.0, -2.0])  # the first batch sets the range
    obs.update(np.array([[0.0, 5.0], [-4.0, 0.5]], np.float32))
    np.testing.assert_allclose(obs.min_val, [1.0 - 0.01, -2.0 - 0.02])
    np.testing.assert_allclose(obs.max_val, [3.0 + 0.02, 0.5])


def test_is_the_moving_average_observer_kept_per_channel() -> None:
    data = _batches(seed=7)
    ours, shared = MovingAveragePerChannelMinMaxObserver(axis=1), MovingAverageMinMaxObserver(axis=1)
    for b in data:
        ours.update(b)
        shared.update(b)
    np.testing.assert_array_equal(ours.min_val, shared.min_val)
    np.testing.assert_array_equal(ours.max_val, shared.max_val)


def test_merge_is_the_update_weighted_mean_per_channel() -> None:
    """A moving average has no exact merge: the merge is the update-count weighted mean."""
    a, b = MovingAveragePerChannelMinMaxObserver(axis=0), MovingAveragePerChannelMinMaxObserver(axis=0)
    a.update(np.array([[-1.0, 1.0], [np.nan, np.nan]], np.float32))  # channel 1 never seen by a
    for _ in range(3):
        b.update(np.array([[-5.0, 9.0], [2.0, 4.0]], np.float32))
    m = a.merge(b)
    np.testing.assert_allclose(m.min_val, [(1 * -1.0 + 3 * -5.0) / 4, 2.0])
    np.testing.assert_allclose(m.max_val, [(1 * 1.0 + 3 * 9.0) / 4, 4.0])
    assert m.nonfinite_count == 2 and type(m) is MovingAveragePerChannelMinMaxObserver


def test_merge_of_equal_halves_equals_one_observer() -> None:
    """When both halves see the same batches the weighted mean is exactly the single average."""
    data = _batches(seed=3)
    a, b, one = (MovingAveragePerChannelMinMaxObserver(axis=2) for _ in range(3))
    for x in data:
        a.update(x)
        b.update(x)
        one.update(x)
    m = a.merge(b)
    np.testing.assert_array_equal(
        m.qparams("uint8", False, False).scale, one.qparams("uint8", False, False).scale
    )


def test_merge_refuses_other_kinds_and_settings() -> None:
    with pytest.raises(TypeError):
        MovingAveragePerChannelMinMaxObserver(axis=0).merge(MovingAverageMinMaxObserver(axis=0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="different averaging constants"):
        MovingAveragePerChannelMinMaxObserver(axis=0).merge(
            MovingAveragePerChannelMinMaxObserver(axis=0, averaging_constant=0.5)
        )


def test_state_dict_round_trips_through_json() -> None:
    obs = MovingAveragePerChannelMinMaxObserver(axis=1, averaging_constant=0.2)
    for b in _batches(seed=5):
        obs.update(b)
    obs.update(np.full((4, 5, 7), np.inf, np.float32))
    state = json.loads(json.dumps(obs.state_dict(), allow_nan=False))
    back = MovingAveragePerChannelMinMaxObserver.from_state_dict(state)
    for args in [("uint8", False, False), ("int8", True, True)]:
        np.testing.assert_array_equal(back.qparams(*args).scale, obs.qparams(*args).scale)
        np.testing.assert_array_equal(back.qparams(*args).zero_point, obs.qparams(*args).zero_point)
    assert back.nonfinite_count == 140 and back.averaging_constant == 0.2


def test_bad_state_fields_are_one_line_errors() -> None:
    obs = MovingAveragePerChannelMinMaxObserver(axis=0)
    obs.update(np.ones((2, 3), np.float32))
    state = obs.state_dict()
    with pytest.raises(ValueError, match="lacks field 'updates'"):
        MovingAveragePerChannelMinMaxObserver.from_state_dict(
            {k: v for k, v in state.items() if k != "updates"}
        )
    with pytest.raises(ValueError, match="unknown field 'ch_axis'"):
        MovingAveragePerChannelMinMaxObserver.from_state_dict(state | {"ch_axis": 0})
    with pytest.raises(ValueError, match="min and max must be finite with min <= max"):
        MovingAveragePerChannelMinMaxObserver.from_state_dict(state | {"min": [2.0, 2.0], "max": [1.0, 1.0]})


def test_constant_and_zero_channels_get_a_valid_scale() -> None:
    obs = MovingAveragePerChannelMinMaxObserver(axis=0)
    obs.update(np.array([[0.0, 0.0, 0.0], [3.0, 3.0, 3.0]], np.float32))
    qp = obs.qparams("uint8", False, False)
    assert np.all(qp.scale > 0)
    assert float(qp.scale[0]) == 1.0  # zero width: choose_qparams' scale 1
    assert float(qp.scale[1]) == pytest.approx(3.0 / 255)


def test_bad_arguments_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match=r"averaging_constant must be a number in \(0, 1\], got 0"):
        make_observer("moving_average_per_channel_minmax", axis=0, averaging_constant=0)
    with pytest.raises(ValueError, match="axis must be an int or None"):
        MovingAveragePerChannelMinMaxObserver(axis="1")  # type: ignore[arg-type]
    obs = MovingAveragePerChannelMinMaxObserver(axis=1)
    obs.update(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="4 channels on axis 1, expected 3"):
        obs.update(np.zeros((2, 4), np.float32))
