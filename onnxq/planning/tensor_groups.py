"""Tensor groups: the sets of tensors quantized with one shared scale and zero point.

Groups are the classes of a union-find over value names:

* a pass-through op's outputs join its input's group (they hold a subset of the input's values,
  so the input's parameters represent them exactly);
* a Concat's inputs and output form one group (the integer Concat is then a plain copy).

Each member has a role that says where the group's range comes from:

* *derived* (outputs of pass-through ops and Concat): covered by the other members, no observer;
* *constant* (initializers read as activations): observed once, from their value;
* *fixed* (Sigmoid/Softmax/Tanh outputs): when every non-derived member is fixed, the group gets
  the hull of their fixed ranges; otherwise they are observed like the rest. A member fixed only
  "when filled" is observed all the same, and the group's known range is used only if the
  observed one fills it (:mod:`onnxq.calibration.resolve`);
* *observed*: everything else (graph inputs, outputs of weighted/elementwise ops or float nodes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import onnx_ir as ir

from onnxq.graph import constant_array, iter_graphs
from onnxq.qconfig import QSpec


@dataclass(frozen=True)
class TensorGroup:
    """Tensors sharing one scale and zero point; ``spec`` is the activation QSpec to use."""

    members: tuple[str, ...]
    observed: tuple[str, ...]
    constants: tuple[str, ...]
    spec: QSpec
    fixed_range: tuple[float, float] | None = None
    #: The fixed range applies only when the observed members' range fills it.
    fixed_when_filled: bool = False


class GroupBuilder:
    """Collects the planned values and their relations, then builds the groups."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}
        self._specs: dict[str, QSpec] = {}
        self._derived: set[str] = set()
        self._fixed: dict[str, tuple[float, float]] = {}
        self._when_filled: set[str] = set()

    def add(self, value: str, spec: QSpec) -> None:
        """Plan ``value``; the first spec given for a value is kept."""
        self._parent.setdefault(value, value)
        self._specs.setdefault(value, spec)

    def derive(self, value: str, sources: Sequence[str]) -> None:
        """``value`` shares the parameters of ``sources`` (and they of each other)."""
        for source in sources:
            self._union(source, value)
        self._derived.add(value)

    def fix(self, value: str, fixed_range: tuple[float, float], *, when_filled: bool = False) -> None:
        """``value`` has a known range (its producer's output range); ``when_filled``: use it only
        if the observed range fills it, so observe the value anyway."""
        self._fixed[value] = fixed_range
        if when_filled:
            self._when_filled.add(value)

    def build(self, graph: ir.Graph) -> tuple[tuple[TensorGroup, ...], dict[str, int]]:
        """The groups, and the index of each value's group."""
        values = values_by_name(graph)
        groups: list[TensorGroup] = []
        group_of: dict[str, int] = {}
        for members in self._classes():
            consts = tuple(m for m in members if constant_array(values[m]) is not None)
            own = [m for m in members if m not in self._derived and m not in consts]
            fixed_range, when_filled = None, False
            if own and not consts and all(m in self._fixed for m in own):
                fixed_range = (min(self._fixed[m][0] for m in own), max(self._fixed[m][1] for m in own))
                when_filled = any(m in self._when_filled for m in own)
                own = own if when_filled else []
            for m in members:
                group_of[m] = len(groups)
            spec = self._specs[members[0]]
            groups.append(TensorGroup(tuple(members), tuple(own), consts, spec, fixed_range, when_filled))
        return tuple(groups), group_of

    def _find(self, x: str) -> str:
        root = x
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[x] != root:  # path compression
            self._parent[x], x = root, self._parent[x]
        return root

    def _union(self, a: str, b: str) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra != rb:
            self._parent[rb] = ra

    def _classes(self) -> list[list[str]]:
        out: dict[str, list[str]] = {}
        for x in self._parent:
            out.setdefault(self._find(x), []).append(x)
        return list(out.values())


def values_by_name(graph: ir.Graph) -> dict[str, ir.Value]:
    """Every value of ``graph`` and its subgraphs (inputs, initializers, node outputs) by name; where
    a body repeats an outer name, the outer value is the one given."""
    values: dict[str, ir.Value] = {}
    for g in iter_graphs(graph):
        for v in (*g.inputs, *g.initializers.values(), *(o for node in g for o in node.outputs)):
            values.setdefault(v.name or "", v)
    return values


__all__ = ["GroupBuilder", "TensorGroup", "values_by_name"]
