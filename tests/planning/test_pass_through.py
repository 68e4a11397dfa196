"""Tests of onnxq.planning.pass_through: which pass-through nodes are worth quantizing."""

from __future__ import annotations

from collections.abc import Callable

import onnx
import onnx_ir as ir
import pytest

from onnxq.io import load_model
from onnxq.planning.fusion import find_fusion_groups
from onnxq.planning.pass_through import ISOLATED_REASON, isolated_pass_through
from onnxq.planning.plan import build_plan
from onnxq.qconfig import QConfigMapping, get_default_qconfig

HEADER = '<ir_version: 8, opset_import: ["" : 17]>'
X86 = QConfigMapping(global_qconfig=get_default_qconfig("x86"))
WEIGHTS = "{" + ", ".join(str(0.01 * (i - 8)) for i in range(16)) + "}"
# x -> Transpose -> Reshape -> Erf -> Transpose: no quantized neighbour (isolated);
# x -> Transpose -> Transpose -> MatMul: anchored through the consumer, two hops away;
# MatMul -> Reshape -> Transpose -> Erf: anchored through the producer, two hops away.
GRAPH = f"""{HEADER}
g (float[2, 4] x) => (float[4, 2] y, float[2, 4] z, float[4, 2] u)
<float[4, 4] w = {WEIGHTS}, int64[2] shape = {{2, 4}}>
{{
    [lone_t] t = Transpose(x)
    [lone_r] r = Reshape(t, shape)
    [erf] e = Erf(r)
    [lone_t2] y = Transpose(e)
    [feeding_t] ft = Transpose(x)
    [feeding_t_back] ft2 = Transpose(ft)
    [mm] m = MatMul(ft2, w)
    [after_r] mr = Reshape(m, shape)
    [after_t] u0 = Transpose(mr)
    [erf2] u = Erf(u0)
    [neg] z = Neg(m)
}}"""


@pytest.fixture
def model(model_from_text: Callable[[str], onnx.ModelProto]) -> ir.Model:
    return load_model(model_from_text(GRAPH))


def test_isolated_pass_through_finds_chains_without_quantized_neighbour(model: ir.Model) -> None:
    movers = ("Transpose", "Reshape")
    found = isolated_pass_through(model.graph, lambda n: n.name == "mm" or n.op_type in movers)
    assert found == {"lone_t", "lone_r", "lone_t2"}


def test_isolated_pass_through_is_empty_when_every_op_is_refused(model: ir.Model) -> None:
    assert isolated_pass_through(model.graph, lambda n: False) == set()


def test_isolated_pass_through_marks_all_when_no_compute_node_is_quantizable(model: ir.Model) -> None:
    found = isolated_pass_through(model.graph, lambda n: n.op_type in ("Transpose", "Reshape"))
    assert found == {"lone_t", "lone_r", "lone_t2", "feeding_t", "feeding_t_back", "after_r", "after_t"}


def test_plan_leaves_isolated_pass_through_float_and_unobserved(model: ir.Model) -> None:
    plan = build_plan(model, X86, find_fusion_groups(model.graph))
    reasons = {d.name: d.reason for d in plan.decisions}
    assert {k for k, v in reasons.items() if v == ISOLATED_REASON} == {"lone_t", "lone_r", "lone_t2"}
    assert set(plan.quantized_nodes()) == {"feeding_t", "feeding_t_back", "mm", "after_r", "after_t"}
    observed = set(plan.observed_values())
    assert not observed & {"t", "r", "e", "y"}
    assert "x" in observed and "m" in observed
