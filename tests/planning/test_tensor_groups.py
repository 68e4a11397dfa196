"""Tests of tensor groups (onnxq.planning.tensor_groups): shared-parameter classes and member roles."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxq.planning.tensor_groups import GroupBuilder, values_by_name
from onnxq.qconfig import QSpec

A = QSpec(observer="minmax")
B = QSpec("int8", symmetric=True, observer="minmax")


def _graph() -> ir.Graph:
    x, y = ir.Value(name="x"), ir.Value(name="y")
    k = ir.Value(name="k", const_value=ir.tensor(np.array([1.0, -2.0], np.float32)))
    add = ir.Node("", "Add", [x, k], outputs=[ir.Value(name="s")], name="add")
    sig = ir.Node("", "Sigmoid", [add.outputs[0]], outputs=[ir.Value(name="t")], name="sig")
    tanh = ir.Node("", "Tanh", [y], outputs=[ir.Value(name="u")], name="tanh")
    cat = ir.Node("", "Concat", [sig.outputs[0], tanh.outputs[0]], [ir.AttrInt64("axis", 0)],
                  outputs=[ir.Value(name="c")], name="cat")
    graph = ir.Graph([x, y], [cat.outputs[0]], nodes=[add, sig, tanh, cat], initializers=[k],
                     opset_imports={"": 17})
    return graph


def test_group_builder_derived_members_share_group_and_need_no_observer() -> None:
    builder = GroupBuilder()
    for v, spec in (("x", A), ("s", B), ("t", A)):
        builder.add(v, spec)
    builder.derive("t", ("s",))
    groups, group_of = builder.build(_graph())
    assert group_of["s"] == group_of["t"] != group_of["x"]
    shared = groups[group_of["t"]]
    assert shared.members == ("s", "t") and shared.observed == ("s",) and shared.spec is B


def test_group_builder_fixed_hull_only_when_every_own_member_is_fixed() -> None:
    builder = GroupBuilder()
    for v in ("t", "u", "c"):
        builder.add(v, A)
    builder.fix("t", (0.0, 1.0))
    builder.fix("u", (-1.0, 1.0))
    builder.derive("c", ("t", "u"))
    groups, group_of = builder.build(_graph())
    group = groups[group_of["c"]]
    assert (group.fixed_range, group.observed) == ((-1.0, 1.0), ())
    mixed = GroupBuilder()
    for v in ("t", "x", "c"):
        mixed.add(v, A)
    mixed.fix("t", (0.0, 1.0))
    mixed.derive("c", ("t", "x"))
    groups, group_of = mixed.build(_graph())
    group = groups[group_of["c"]]
    assert group.fixed_range is None and set(group.observed) == {"t", "x"}


def test_group_builder_constant_member_is_not_observed() -> None:
    builder = GroupBuilder()
    builder.add("k", A)
    builder.add("x", A)
    groups, group_of = builder.build(_graph())
    assert groups[group_of["k"]].constants == ("k",) and groups[group_of["k"]].observed == ()
    assert groups[group_of["x"]].observed == ("x",)


def test_values_by_name_covers_inputs_initializers_and_outputs() -> None:
    assert sorted(values_by_name(_graph())) == ["c", "k", "s", "t", "u", "x", "y"]
