"""Small onnx-ir helpers shared by the passes.

Values are keyed by object, never by name: use :func:`producer`, :func:`consumers` and
:func:`constant_array` to walk the graph, :class:`NameAuthority` to get fresh names for anything
a pass adds, and :func:`replace_all_uses` / :func:`remove_node` to rewire it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import onnx_ir as ir

from onnxq.errors import UnsupportedModelError
from onnxq.qparams import pack_4bit

logger = logging.getLogger(__name__)

#: The names of the default ONNX operator domain.
ONNX_DOMAINS = frozenset({"", "ai.onnx"})


def is_onnx_domain(domain: str) -> bool:
    """True for the default ONNX domain, however a model spells it ("" or "ai.onnx")."""
    return domain in ONNX_DOMAINS


def is_op(node: ir.Node | None, *op_types: str) -> bool:
    """True when ``node`` is a default-domain node of one of ``op_types`` (none given: never)."""
    return node is not None and node.op_type in op_types and node.domain in ONNX_DOMAINS


def producer(value: ir.Value) -> ir.Node | None:
    """The node that computes ``value`` (None for graph inputs and initializers)."""
    return value.producer()


def consumers(value: ir.Value) -> list[ir.Node]:
    """The distinct nodes that read ``value``, in the order of its uses."""
    seen: dict[int, ir.Node] = {}
    for use in value.uses():
        seen.setdefault(id(use.node), use.node)
    return list(seen.values())


def sole_consumer(value: ir.Value) -> ir.Node | None:
    """The only node reading ``value`` through exactly one input, if ``value`` is not a graph output.

    This is the condition under which a pass may fold the consumer into the producer of ``value``.
    """
    uses = list(value.uses())
    if len(uses) != 1 or value.is_graph_output():
        return None
    return uses[0].node


def is_constant(value: ir.Value | None) -> bool:
    """True when ``value`` is a fixed tensor: an initializer that is not a graph input, or a Constant."""
    return value is not None and constant_array(value) is not None


def constant_array(value: ir.Value | None) -> np.ndarray | None:
    """The value of ``value`` as numpy when it is constant, else None.

    Constant means an initializer that is not also a graph input (a graph input may be overridden
    at run time), or the output of a ``Constant`` node with a ``value``/``value_float(s)``/
    ``value_int(s)`` attribute.
    """
    if value is None:
        return None
    if value.is_graph_input():
        return None
    tensor = value.const_value
    if tensor is None:
        node = value.producer()
        if not is_op(node, "Constant"):
            return None
        tensor = _constant_node_tensor(node)
        if tensor is None:
            return None
    return np.asarray(tensor.numpy())


def _constant_node_tensor(node: ir.Node) -> ir.TensorProtocol | None:
    if len(node.attributes) != 1:
        return None
    name, attr = next(iter(node.attributes.items()))
    if attr.is_ref():
        return None
    if name == "value":
        return attr.value
    if name == "value_float":
        return ir.tensor(np.array(attr.value, dtype=np.float32))
    if name == "value_floats":
        return ir.tensor(np.array(list(attr.value), dtype=np.float32))
    if name == "value_int":
        return ir.tensor(np.array(attr.value, dtype=np.int64))
    if name == "value_ints":
        return ir.tensor(np.array(list(attr.value), dtype=np.int64))
    return None


def int_attr(node: ir.Node, name: str, default: int) -> int:
    """The node's integer attribute ``name``, or ``default`` when it is absent."""
    attr = node.attributes.get(name)
    return default if attr is None else int(attr.value)


def float_attr(node: ir.Node, name: str, default: float) -> float:
    """The node's float attribute ``name``, or ``default`` when it is absent."""
    attr = node.attributes.get(name)
    return default if attr is None else float(attr.value)


def opset_version(model: ir.Model, domain: str = "") -> int:
    """The opset the model imports for ``domain`` ("" and "ai.onnx" are the same domain)."""
    imports = model.opset_imports
    default = is_onnx_domain(domain)
    version = imports.get("", imports.get("ai.onnx")) if default else imports.get(domain)
    if version is None:
        raise UnsupportedModelError(f"model imports no opset for domain {domain or 'ai.onnx'!r}")
    return int(version)


def iter_graphs(graph: ir.Graph) -> Iterator[ir.Graph]:
    """``graph`` and every subgraph under it (If/Loop/Scan bodies), outermost first."""
    yield graph
    for node in graph:
        for sub in node_subgraphs(node):
            yield from iter_graphs(sub)


def node_subgraphs(node: ir.Node) -> Iterator[ir.Graph]:
    """The graphs held directly by ``node``'s attributes (an If's branches, a Loop's body)."""
    for attr in node.attributes.values():
        if attr.is_ref():
            continue
        if attr.type == ir.AttributeType.GRAPH:
            yield attr.value
        elif attr.type == ir.AttributeType.GRAPHS:
            yield from attr.value


def name_nodes(graph: ir.Graph, names: NameAuthority | None = None) -> int:
    """Give every unnamed or duplicate-named node of ``graph`` and its subgraphs a fresh name
    (``Relu``, ``Relu_1``...): qconfigs and reports refer to nodes by name. Returns how many changed."""
    names = names or NameAuthority(graph)
    seen: set[str] = set()
    renamed = 0
    for g in iter_graphs(graph):
        for node in g:
            if not node.name or node.name in seen:
                node.name = names.node(node.op_type)
                renamed += 1
            seen.add(node.name)
    return renamed


class NameAuthority:
    """Hands out value and node names not used anywhere in a graph (subgraphs included).

    Build one per pass run, *after* loading: ``names = NameAuthority(model.graph)``; then
    ``names.value("conv1_weight_q")`` returns ``conv1_weight_q`` or ``conv1_weight_q_1``... The hint
    is only a readable prefix; nothing ever parses a name back.
    """

    def __init__(self, graph: ir.Graph) -> None:
        self._values: set[str] = set()
        self._nodes: set[str] = set()
        for g in iter_graphs(graph):
            for v in (*g.inputs, *g.outputs, *g.initializers.values()):
                if v.name:
                    self._values.add(v.name)
            for node in g:
                if node.name:
                    self._nodes.add(node.name)
                for v in node.outputs:
                    if v.name:
                        self._values.add(v.name)

    @staticmethod
    def _fresh(hint: str, taken: set[str]) -> str:
        base = hint or "onnxq"
        name = base
        k = 0
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        taken.add(name)
        return name

    def value(self, hint: str) -> str:
        """A fresh value name starting with ``hint``; it is reserved from then on."""
        return self._fresh(hint, self._values)

    def node(self, hint: str) -> str:
        """A fresh node name starting with ``hint``; it is reserved from then on."""
        return self._fresh(hint, self._nodes)

    def reserve_value(self, name: str) -> None:
        """Mark ``name`` as used (e.g. a value added without going through this authority)."""
        self._values.add(name)


def new_initializer(graph: ir.Graph, array: np.ndarray, names: NameAuthority, hint: str) -> ir.Value:
    """Add ``array`` to ``graph`` as a new initializer with a fresh name and return its value."""
    array = np.asarray(array)
    name = names.value(hint)
    dtype = ir.DataType.from_numpy(array.dtype)
    value = ir.Value(
        name=name,
        shape=ir.Shape(array.shape),
        type=ir.TensorType(dtype),
        const_value=_packed(array, dtype, name) if dtype.bitwidth == 4 else ir.tensor(array, name=name),
    )
    graph.register_initializer(value)
    return value


def _packed(array: np.ndarray, dtype: ir.DataType, name: str) -> ir.PackedTensor:
    """A 4-bit ``array`` (numpy holds one element per byte) stored two per byte as ONNX stores it:
    half the memory while the model is held, the same bytes when it is saved."""
    return ir.PackedTensor(pack_4bit(array), dtype, shape=array.shape, name=name)


def replace_all_uses(old: ir.Value, new: ir.Value, names: NameAuthority | None = None) -> None:
    """Make every reader of ``old`` read ``new`` instead, graph outputs included.

    A graph output keeps its name (the model's interface does not change): when ``new`` is an
    ordinary node output it takes over ``old``'s name; otherwise (``new`` is a graph input, an
    initializer or already an output) an ``Identity`` node named from ``names`` produces it.
    """
    if old is new:
        return
    graph = old.graph
    if old.is_graph_output() and graph is not None:
        out_name = old.name
        movable = (
            new.producer() is not None
            and not new.is_graph_output()
            and not new.is_graph_input()
            and not new.is_initializer()
        )
        if movable:
            old.name = (names or NameAuthority(graph)).value(f"{out_name}_replaced")
            new.name = out_name
            target = new
        else:
            authority = names or NameAuthority(graph)
            old.name = authority.value(f"{out_name}_replaced")
            target = ir.Value(name=out_name, shape=old.shape, type=old.type)
            identity = ir.Node(
                "", "Identity", [new], outputs=[target], name=authority.node(f"{out_name}_identity")
            )
            graph.append(identity)
        for i, output in enumerate(graph.outputs):
            if output is old:
                graph.outputs[i] = target
    for use in list(old.uses()):
        use.node.replace_input_with(use.idx, new)


def remove_node(node: ir.Node) -> None:
    """Detach ``node`` from its inputs and remove it; its outputs must no longer be used."""
    graph = node.graph
    if graph is None:
        raise ValueError(f"node {node.name!r} ({node.op_type}) belongs to no graph")
    graph.remove(node, safe=True)


def remove_unused_initializers(graph: ir.Graph) -> int:
    """Drop initializers nothing reads (and that are not graph inputs/outputs); return how many."""
    dead = [
        name
        for name, value in graph.initializers.items()
        if not value.uses() and not value.is_graph_output() and not value.is_graph_input()
    ]
    for name in dead:
        del graph.initializers[name]
    return len(dead)


def count_ops(graph: ir.Graph) -> dict[str, int]:
    """``{op_type: count}`` over the nodes of ``graph`` (not its subgraphs)."""
    counts: dict[str, int] = {}
    for node in graph:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


__all__ = [
    "ONNX_DOMAINS",
    "NameAuthority",
    "constant_array",
    "consumers",
    "count_ops",
    "float_attr",
    "int_attr",
    "is_constant",
    "is_onnx_domain",
    "is_op",
    "iter_graphs",
    "name_nodes",
    "new_initializer",
    "node_subgraphs",
    "opset_version",
    "producer",
    "remove_node",
    "remove_unused_initializers",
    "replace_all_uses",
    "sole_consumer",
]
