"""FixedQParamsObserver: PyTorch agreement, the named constants, counting, merge, state, arguments."""

from __future__ import annotations

import json

import numpy as np
import pytest

from onnxq.calibration.observers import FixedQParamsObserver, make_observer
from onnxq.calibration.observers.fixed_qparams import SIGMOID_SOFTMAX, SIGMOID_SOFTMAX_INT8, TANH, TANH_INT8
from onnxq.errors import ConfigError
from onnxq.qconfig import QConfig, QConfigMapping, QSpec
from onnxq.qparams import fixed_qparams


@pytest.mark.parametrize(
    ("torch_name", "args"),
    [
        ("default_fixed_qparams_range_0to1_observer", SIGMOID_SOFTMAX),
        ("default_fixed_qparams_range_neg1to1_observer", TANH),
    ],
)
def test_constants_match_torch_default_fixed_qparams_observers(torch_name: str, args: dict) -> None:
    """Scale and zero point exactly equal to PyTorch's (both are powers of two)."""
    pytest.importorskip("torch")
    from torch.ao.quantization import observer as tobs

    ref = getattr(tobs, torch_name)()
    t_scale, t_zp = ref.calculate_qparams()
    qp = FixedQParamsObserver(**args).qparams("uint8", False, False)
    assert float(qp.scale) == float(t_scale) and int(qp.zero_point) == int(t_zp)


def test_qparams_equal_torchs_whatever_is_observed() -> None:
    torch = pytest.importorskip("torch")
    from torch.ao.quantization import FixedQParamsObserver as TorchObserver

    ref = TorchObserver(scale=0.0123, zero_point=17, dtype=torch.quint8, quant_min=0, quant_max=255)
    ours = FixedQParamsObserver(scale=0.0123, zero_point=17)
    for x in (np.linspace(-50, 50, 99, dtype=np.float32), np.zeros(3, np.float32)):
        ref(torch.from_numpy(x))
        ours.update(x)
    t_scale, t_zp = ref.calculate_qparams()
    qp = ours.qparams("uint8", False, False)
    assert float(qp.scale) == pytest.approx(float(t_scale), rel=1e-6)  # both float32 of 0.0123
    assert int(qp.zero_point) == int(t_zp)


@pytest.mark.parametrize(
    ("args", "fixed_range", "dtype"),
    [
        (SIGMOID_SOFTMAX, (0.0, 1.0), "uint8"),
        (TANH, (-1.0, 1.0), "uint8"),
        (SIGMOID_SOFTMAX_INT8, (0.0, 1.0), "int8"),
        (TANH_INT8, (-1.0, 1.0), "int8"),
    ],
)
def test_constants_are_the_fixed_range_op_rules_parameters(
    args: dict, fixed_range: tuple, dtype: str
) -> None:
    want = fixed_qparams(fixed_range, dtype)
    got = FixedQParamsObserver(**args).qparams(dtype, False, False)
    assert float(got.scale) == float(want.scale) and int(got.zero_point) == int(want.zero_point)
    assert got.dtype == dtype


def test_update_only_counts() -> None:
    obs = FixedQParamsObserver(**TANH)
    obs.update(np.array([np.nan, np.inf], np.float32))
    assert not obs.reached and obs.nonfinite_count == 2
    before = obs.qparams("uint8", False, False)
    obs.update(np.array([1e6, -np.inf], np.float32))
    assert obs.reached and obs.nonfinite_count == 3
    after = obs.qparams("uint8", False, False)
    assert float(after.scale) == float(before.scale) == 2 / 256 and int(after.zero_point) == 128


def test_merge_of_halves_equals_one_observer_and_needs_equal_settings() -> None:
    a, b, one = (FixedQParamsObserver(**SIGMOID_SOFTMAX) for _ in range(3))
    for obs, x in ((a, [np.nan]), (b, [0.3, np.inf]), (one, [np.nan, 0.3, np.inf])):
        obs.update(np.asarray(x, np.float32))
    m = a.merge(b)
    assert (m.reached, m.nonfinite_count) == (one.reached, one.nonfinite_count) == (True, 2)
    assert m.state_dict() == one.state_dict()
    with pytest.raises(ValueError, match="cannot merge fixed_qparams observers of scale/zero point"):
        a.merge(FixedQParamsObserver(**TANH))
    with pytest.raises(TypeError):
        a.merge(make_observer("minmax"))  # type: ignore[arg-type]


def test_zero_point_outside_the_requested_dtype_is_a_one_line_error() -> None:
    obs = FixedQParamsObserver(**TANH)  # zero point 128
    with pytest.raises(ValueError, match=r"zero_point 128 is outside the range \[-128, 127\] of int8$"):
        obs.qparams("int8", False, False)
    with pytest.raises(ValueError, match=r"\[0, 127\] of uint8 reduce_range$"):
        obs.qparams("uint8", False, True)
    with pytest.raises(ValueError, match=r"\[-127, 127\] of int8 symmetric$"):
        FixedQParamsObserver(**SIGMOID_SOFTMAX_INT8).qparams("int8", True, False)
    assert int(FixedQParamsObserver(**TANH_INT8).qparams("int8", True, False).zero_point) == 0


def test_state_dict_round_trips_through_json() -> None:
    obs = FixedQParamsObserver(**TANH)
    obs.update(np.array([0.5, np.nan], np.float32))
    back = FixedQParamsObserver.from_state_dict(json.loads(json.dumps(obs.state_dict(), allow_nan=False)))
    assert back.state_dict() == obs.state_dict()
    q0, q1 = back.qparams("uint8", False, False), obs.qparams("uint8", False, False)
    assert float(q0.scale) == float(q1.scale) and int(q0.zero_point) == int(q1.zero_point)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scale": -1.0}, "scale must be a finite float32 number"),
        ({"zero_point": 1.5}, "zero_point must be an int in"),
        ({"reached": 1}, "'reached' must be true or false"),
        ({"nonfinite": -2}, "'nonfinite' must be a non-negative int"),
        ({"axis": 0}, "'axis' must be null"),
        ({"bins": 8}, "unknown field 'bins'"),
    ],
)
def test_bad_state_fields_are_one_line_value_errors(change: dict, message: str) -> None:
    state = FixedQParamsObserver(**TANH).state_dict() | change
    with pytest.raises(ValueError, match=message):
        FixedQParamsObserver.from_state_dict(state)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"scale": 0.0, "zero_point": 0}, "scale must be a finite float32 number of at least"),
        ({"scale": float("nan"), "zero_point": 0}, "scale must be"),
        ({"scale": 1e39, "zero_point": 0}, "scale must be"),
        ({"scale": 0.1, "zero_point": 70000}, r"zero_point must be an int in \[-32768, 65535\]"),
        ({"scale": 0.1, "zero_point": True}, "zero_point must be an int"),
        ({"scale": 0.1}, "zero_point"),
    ],
)
def test_bad_arguments_are_one_line_config_errors(args: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        QSpec("uint8", observer="fixed_qparams", observer_args=args)
    assert "\n" not in str(info.value)


def test_per_channel_is_refused() -> None:
    with pytest.raises(ConfigError, match="per-tensor only"):
        make_observer("fixed_qparams", axis=0, **SIGMOID_SOFTMAX)


def test_a_mapping_gives_an_op_type_the_fixed_parameters_and_round_trips() -> None:
    weight = QSpec("int8", symmetric=True)
    sigmoid = QConfig(QSpec("uint8", observer="fixed_qparams", observer_args=SIGMOID_SOFTMAX), weight)
    mapping = QConfigMapping(global_qconfig=QConfig(QSpec("uint8"), weight)).set_op_type("Sigmoid", sigmoid)
    back = QConfigMapping.from_dict(json.loads(json.dumps(mapping.to_dict())))
    assert back == mapping
    spec = back.qconfig_for("gate", "Sigmoid").activation  # type: ignore[union-attr]
    qp = make_observer(spec.observer, **spec.observer_args).qparams(
        spec.dtype, spec.symmetric, spec.reduce_range
    )
    assert float(qp.scale) == 1 / 256 and int(qp.zero_point) == 0
