"""Tensors inside ``If`` / ``Loop`` / ``Scan`` bodies, made visible to calibration.

onnxruntime returns only main-graph values, so a tensor computed inside a control-flow body is
carried out of it, one level at a time, on a copy of the model:

* out of an ``If`` branch: the tensor becomes an extra output of its branch, and every other
  branch of that ``If`` outputs an empty tensor ``[0]`` of the same type in its place (branch
  outputs must agree in type, not in shape); the ``If`` gets one more output. A branch no sample
  takes gives only empty tensors, which observers ignore: its tensors stay unreached.
* out of a ``Loop`` or ``Scan`` body: the tensor becomes an extra scan output, so the node's new
  output stacks it over the iterations (axis 0; a ``Scan``'s ``scan_output_axes`` is extended).

Nested bodies repeat the step until the value reaches the main graph. :func:`expose` returns the
copy and, for each tensor, the name of the main-graph value that carries it. The model given is
not changed; the copy shares its tensors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import onnx_ir as ir

from onnxq.graph import NameAuthority, is_op, iter_graphs, node_subgraphs

_CARRIERS = ("If", "Loop", "Scan")


def _owners(graph: ir.Graph) -> dict[int, ir.Node]:
    """The node owning each subgraph, by the subgraph's id."""
    return {id(sub): node for g in iter_graphs(graph) for node in g for sub in node_subgraphs(node)}


def expose(model: ir.Model, names: Iterable[str]) -> tuple[ir.Model, dict[str, str]]:
    """A copy of ``model`` in which each tensor of ``names`` living in a control-flow body is carried
    to a main-graph value; and, per tensor that could be carried, that value's name."""
    wanted = set(names)
    copy = model.clone()
    main = copy.graph
    bodies = [g for g in iter_graphs(main) if g is not main]
    values = {v.name: v for g in bodies for n in g for v in n.outputs if v.name in wanted}
    if not values:
        return copy, {}
    owners = _owners(main)
    names_authority = NameAuthority(main)
    carriers: dict[str, str] = {}
    for name, value in values.items():
        carried: ir.Value | None = value
        while carried is not None and carried.graph is not main:
            carried = _carry_out(carried, owners, names_authority)
        if carried is not None:
            carriers[name] = carried.name or ""
    return copy, carriers


def _carry_out(value: ir.Value, owners: Mapping[int, ir.Node], names: NameAuthority) -> ir.Value | None:
    """``value`` (in a body) carried to the graph holding the body's node; None if it cannot be."""
    body = value.graph
    node = owners.get(id(body)) if body is not None else None
    if node is None or not is_op(node, *_CARRIERS) or body is None:
        return None
    dtype = value.dtype or ir.DataType.FLOAT
    _add_output(body, value, names)
    if node.op_type == "If":
        for branch in node_subgraphs(node):
            if branch is not body:
                _add_output(branch, _empty(branch, dtype, names), names)
    elif node.op_type == "Scan":
        axes = node.attributes.get("scan_output_axes")
        if axes is not None:
            node.attributes["scan_output_axes"] = ir.AttrInt64s("scan_output_axes", [*axes.as_ints(), 0])
    node.resize_outputs(len(node.outputs) + 1)
    new = node.outputs[-1]
    new.name, new.type = names.value(f"{value.name}_carried"), ir.TensorType(dtype)
    return new


def _add_output(graph: ir.Graph, value: ir.Value, names: NameAuthority) -> None:
    if (
        value.is_graph_input()
        or value.is_initializer()
        or value.is_graph_output()
        or value.graph is not graph
    ):
        # a body output is computed in the body, once: pass an input, an outer value or an output
        # that is there already through an Identity
        ident = ir.Node("", "Identity", [value], name=names.node("carry_identity"))
        ident.outputs[0].name = names.value(f"{value.name}_identity")
        ident.outputs[0].type = value.type
        graph.append(ident)
        value = ident.outputs[0]
    graph.outputs.append(value)


def _empty(graph: ir.Graph, dtype: ir.DataType, names: NameAuthority) -> ir.Value:
    """A new ``Constant`` of shape ``[0]`` and ``dtype`` in ``graph``."""
    tensor = ir.tensor(np.zeros(0, dtype=dtype.numpy()), name=names.value("carry_empty"))
    node = ir.Node("", "Constant", [], [ir.AttrTensor("value", tensor)], name=names.node("carry_empty"))
    node.outputs[0].name = names.value("carry_empty")
    node.outputs[0].type = ir.TensorType(dtype)
    graph.append(node)
    return node.outputs[0]


def untaken_branches(graph: ir.Graph, observed: Iterable[str], unreached: Iterable[str]) -> list[str]:
    """One line per ``If`` branch whose observed tensors no calibration sample reached (the ``If``
    nodes inside such a branch are not listed again)."""
    observed, unreached = set(observed), set(unreached)
    lines: list[str] = []

    def visit(g: ir.Graph) -> None:
        for node in g:
            for attr_name, attr in node.attributes.items():
                if attr.is_ref() or attr.type != ir.AttributeType.GRAPH:
                    continue
                inner = {v.name for b in iter_graphs(attr.value) for n in b for v in n.outputs} & observed
                if is_op(node, "If") and inner and inner <= unreached:
                    lines.append(
                        f"If '{node.name}': no calibration sample took its {attr_name}; "
                        f"its {len(inner)} observed tensor(s) stay unreached and their nodes float"
                    )
                else:
                    visit(attr.value)

    visit(graph)
    return lines


__all__ = ["expose", "untaken_branches"]
