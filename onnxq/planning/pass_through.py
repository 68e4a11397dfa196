"""Which pass-through nodes (Transpose, Reshape, MaxPool, ...) are worth quantizing.

A pass-through op moves values without computing new ones, so in a QDQ graph it costs nothing when
its input is already quantized: ``Q(T(DQ(q))) = T(q)`` with the input's scale and zero point, and
onnxruntime runs ``T`` on the int8 tensor. It is worth it only next to quantized compute: then the
int8 tensor flows through it instead of being dequantized and quantized again.

Between float nodes it is the opposite: quantizing it inserts a Q/DQ pair that nothing needed, and
its rounding error, ``|x - DQ(Q(x))| <= scale / 2`` per element (plus clipping outside the
calibrated range), reaches the float consumer unchanged (an LSTM behind the ``Transpose`` of
``batch_first``; the ``Squeeze`` between an LSTM and a float ``Gather``).

So a pass-through node is *anchored* when, following pass-through nodes only, its input comes from
or one of its outputs goes to a node quantized for what it computes (any other quantizable kind);
the rest are *isolated* and stay float. The anchored set is the connected closure of the compute
nodes over the graph of pass-through nodes, found by a breadth-first search.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import onnx_ir as ir

from onnxq.graph import consumers
from onnxq.planning.ops import QuantKind, rule_of

#: Why an isolated pass-through node stays float.
ISOLATED_REASON = "pass-through op with no quantized neighbour (Q/DQ here would only add error)"


def isolated_pass_through(graph: ir.Graph, quantizable: Callable[[ir.Node], bool]) -> set[str]:
    """Names of the pass-through nodes of ``graph`` no quantized compute node reaches (see module doc).

    ``quantizable(node)`` tells whether a node of the main graph would be quantized on its own
    merits (supported op, qconfig not None, float tensors); a fusion group's absorbed nodes should
    answer like their anchor.
    """
    candidates = [n for n in graph if _is_pass_through(n) and quantizable(n)]
    if not candidates:
        return set()
    members = {id(n) for n in candidates}
    compute = {id(n) for n in graph if id(n) not in members and quantizable(n)}
    anchored: set[int] = set()
    queue = deque(n for n in candidates if any(id(m) in compute for m in _neighbours(n)))
    anchored.update(id(n) for n in queue)
    while queue:
        node = queue.popleft()
        for other in _neighbours(node):
            if id(other) in members and id(other) not in anchored:
                anchored.add(id(other))
                queue.append(other)
    return {n.name or "" for n in candidates if id(n) not in anchored}


def _is_pass_through(node: ir.Node) -> bool:
    rule = rule_of(node)
    return rule is not None and rule.kind is QuantKind.PASS_THROUGH


def _neighbours(node: ir.Node) -> list[ir.Node]:
    """The producers of ``node``'s activation inputs and the readers of its outputs."""
    rule = rule_of(node)
    found: list[ir.Node] = []
    slots = rule.activation_indices(node) if rule is not None else range(len(node.inputs))
    for i in slots:
        value = node.inputs[i]
        producer = value.producer() if value is not None else None
        if producer is not None:
            found.append(producer)
    for out in node.outputs:
        found.extend(consumers(out))
    return found


__all__ = ["ISOLATED_REASON", "isolated_pass_through"]
