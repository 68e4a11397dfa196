"""Tests of qparams resolution for a plan (onnxq.calibration.resolve)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx_ir as ir
import pytest

from onnxq.calibration.observers import make_observer
from onnxq.calibration.resolve import drop_unreached, make_observers, resolve_qparams
from onnxq.planning.plan import QuantPlan
from onnxq.qconfig import QConfig, QConfigMapping, QSpec, get_default_qconfig
from onnxq.qparams import dequantize, quantize

X86 = QConfigMapping(global_qconfig=get_default_qconfig("x86"))
MINMAX = QConfigMapping(
    global_qconfig=QConfig(QSpec(observer="minmax"), QSpec("int8", symmetric=True, observer="minmax"))
)
HEADER = '<ir_version: 8, opset_import: ["" : 17]>'
CONV_RELU = """
g (float[1, 2, 5, 5] x) => (float[1, 3, 5, 5] y) <float[3, 2, 1, 1] w = {1, 2, 3, 4, 5, 6}> {
    [conv] c = Conv(x, w)
    [relu] y = Relu(c)
}
"""


PlanOf = tuple[ir.Model, QuantPlan]


@pytest.fixture
def plan_of(make_plan: Callable[..., PlanOf]) -> Callable[..., PlanOf]:
    return lambda body, mapping=X86: make_plan(f"{HEADER}\n{body}", mapping)


def _decision(plan: QuantPlan, name: str):
    return next(d for d in plan.decisions if d.name == name)


def test_resolve_qparams_merges_concat_inputs_and_uses_exact_constants(plan_of) -> None:
    model, plan = plan_of("""
g (float[1, 2] a, float[1, 3] b) => (float[1, 5] y, float[1, 2] z) <float[2] k = {-3, 0.5}> {
    [cat] y = Concat <axis = 1> (a, b)
    [add] z = Add(a, k)
}
""", MINMAX)
    observers = make_observers(plan)
    observers["a"].update(np.array([[-1.0, 1.0]], np.float32))
    observers["b"].update(np.array([[0.0, 2.0, 3.0]], np.float32))
    observers["z"].update(np.array([[-4.0, 1.5]], np.float32))
    qparams, unreached = resolve_qparams(plan, model, observers)
    assert unreached == frozenset()
    cat = qparams[plan.group_of["y"]]
    assert qparams[plan.group_of["a"]] is cat
    ends = np.float32([-1.0, 3.0])
    np.testing.assert_allclose(dequantize(quantize(ends, cat), cat), ends, atol=0.02)
    k = qparams[plan.group_of["k"]]
    assert float(k.scale) == pytest.approx(3.5 / 255, rel=1e-6)
    assert observers["a"].reached  # observers are not consumed by resolution


def test_drop_unreached_leaves_consumers_float_with_tensor_name(plan_of) -> None:
    model, plan = plan_of(CONV_RELU)
    observers = make_observers(plan)
    observers["y"].update(np.ones((1, 3, 5, 5), np.float32))  # "x" never reached
    qparams, unreached = resolve_qparams(plan, model, observers)
    assert unreached == {"x"}
    dropped = drop_unreached(plan, qparams)
    assert dropped.quantized_nodes() == ()
    assert "'x' was not reached" in (_decision(dropped, "conv").reason or "")
    assert not _decision(dropped, "relu").quantized and dropped.weights == {}


def test_make_observers_builds_spec_observer_per_observed_tensor(plan_of) -> None:
    _, plan = plan_of(CONV_RELU, X86.set_op_type("Conv", get_default_qconfig("qnnpack")))
    observers = make_observers(plan)
    assert set(observers) == {"x", "y"}
    expected = type(make_observer(get_default_qconfig("qnnpack").activation.observer))
    assert all(type(o) is expected and o.axis is None for o in observers.values())


def test_resolve_qparams_fixed_group_and_partly_reached_concat(plan_of) -> None:
    model, plan = plan_of("""
g (float[1, 2] a, float[1, 3] b) => (float[1, 2] s, float[1, 5] y) {
    [sig] s = Sigmoid(a)
    [cat] y = Concat <axis = 1> (a, b)
}
""", MINMAX)
    observers = make_observers(plan)
    assert set(observers) == {"a", "b"}  # the Sigmoid output and the Concat output need none
    observers["b"].update(np.array([[0.0, 2.0, 3.0]], np.float32))  # "a" never reached
    qparams, unreached = resolve_qparams(plan, model, observers)
    assert unreached == {"a"}
    sig = qparams[plan.group_of["s"]]
    assert (float(sig.scale), int(sig.zero_point)) == (1 / 256, 0)
    cat = qparams[plan.group_of["y"]]
    assert float(cat.scale) == pytest.approx(3.0 / 255, rel=1e-6) and int(cat.zero_point) == 0
    assert drop_unreached(plan, qparams).quantized_nodes() == ("sig", "cat")
