"""The constant a node computes, for :class:`onnxq.passes.normalize.Normalize`'s folding step.

``Constant`` -> its value; ``Identity(c)`` -> ``c``; ``ConstantOfShape(s)`` with a constant shape
``s`` -> ``full(s, value)``; ``Shape(x)[start:end]`` of a statically shaped ``x``; and the cheap
deterministic ops of :data:`FOLDABLE_OPS` on constant inputs, run by the onnx reference
implementation. A result bigger than both :data:`MAX_FOLD_ELEMENTS` elements and its inputs is not
folded, and the bound is decided from the input shapes before anything is computed or allocated.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import onnx_ir as ir
from onnx.reference import ReferenceEvaluator

from onnxq.graph import constant_array

logger = logging.getLogger(__name__)
MAX_FOLD_ELEMENTS = 1 << 22
#: Ranks above this are not folded (numpy's arrays stop at 64; no real model comes near).
MAX_RANK = 32

#: Deterministic ops folded when every input is constant (CastLike: when the target dtype is known).
# fmt: off
FOLDABLE_OPS = frozenset({
    "Add", "Cast", "CastLike", "Concat", "Div", "Expand", "Gather", "Mul",
    "Neg", "Reshape", "Slice", "Sqrt", "Squeeze", "Sub", "Transpose", "Unsqueeze",
})
# fmt: on


def _static_shape(node: ir.Node) -> np.ndarray | None:
    """``Shape(x)[start:end]`` when every dimension of ``x`` is a known integer."""
    shape = node.inputs[0].shape if node.inputs and node.inputs[0] is not None else None
    if shape is None or not all(isinstance(d, int) and d >= 0 for d in shape):
        return None
    dims = [int(d) for d in shape]
    start = node.attributes.get_int("start", 0)
    end = node.attributes.get_int("end", len(dims))
    return np.array(dims[start:end], dtype=np.int64)


def _evaluate(node: ir.Node) -> np.ndarray | None:
    """Run one node on its constant inputs with the onnx reference implementation."""
    feeds: dict[str, np.ndarray] = {}
    for i, value in enumerate(node.inputs):
        if value is None:
            continue
        array = constant_array(value)
        if array is None and node.op_type == "CastLike" and i == 1 and value.dtype is not None:
            array = np.zeros(0, dtype=value.dtype.numpy())
        if array is None or not value.name:
            return None
        feeds[value.name] = array
    if len(node.outputs) != 1 or not node.outputs[0].name:
        return None
    # Folding may not blow the file up (Expand); same-size rewrites (Transpose, Cast) always fold.
    limit = max(MAX_FOLD_ELEMENTS, sum(a.size for a in feeds.values()))
    bound = _result_bound(node, list(feeds.values()))
    if bound is None or bound > limit:  # decided before anything is computed or allocated
        return None
    try:
        (result,) = ReferenceEvaluator(ir.serde.serialize_node(node)).run(None, feeds)
    except Exception as exc:  # an op the reference cannot run here: leave the node alone
        logger.debug("normalize: not folding %s '%s': %s", node.op_type, node.name, exc)
        return None
    result = np.asarray(result)
    return result if result.size <= limit else None


def _broadcast_size(shapes: list[tuple[int, ...]]) -> int | None:
    """Elements of the multidirectional broadcast of ``shapes`` (None if they do not broadcast)."""
    rank = max((len(s) for s in shapes), default=0)
    dims = []
    for axis in range(rank):
        sizes = {s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0} - {1}
        if len(sizes) > 1:
            return None
        dims.append(sizes.pop() if sizes else 1)
    return math.prod(dims)


def _result_bound(node: ir.Node, arrays: list[np.ndarray]) -> int | None:
    """An upper bound of the elements ``node`` computes from the constant ``arrays`` (its inputs in
    order), in Python ints; None when it cannot be told without running it."""
    op = node.op_type
    if op in ("Add", "Sub", "Mul", "Div"):
        return _broadcast_size([a.shape for a in arrays])
    if op == "Expand":
        if len(arrays) != 2 or arrays[1].ndim != 1 or arrays[1].dtype.kind not in "iu":
            return None
        return _broadcast_size([arrays[0].shape, tuple(int(d) for d in arrays[1])])
    if op == "Gather":
        if len(arrays) != 2 or arrays[0].ndim == 0:
            return None
        axis = node.attributes.get_int("axis", 0)
        if not -arrays[0].ndim <= axis < arrays[0].ndim:
            return None
        rows = arrays[0].shape[axis]
        return arrays[1].size * (arrays[0].size // rows if rows else 0)
    # the other foldable ops compute at most as many elements as their inputs hold
    return sum(a.size for a in arrays)


def folded_value(node: ir.Node) -> np.ndarray | None:
    """The constant ``node`` computes, if it is one this pass folds."""
    if node.op_type == "Constant":
        return constant_array(node.outputs[0])
    first = node.inputs[0] if node.inputs else None
    if node.op_type == "Identity":
        return constant_array(first)
    if node.op_type == "ConstantOfShape":
        shape = constant_array(first)
        if shape is None or shape.ndim != 1 or shape.size > MAX_RANK or np.any(shape < 0):
            return None
        # Python ints: no overflow to 0; a zero does not excuse a huge other dim (numpy refuses it)
        if math.prod(max(int(d), 1) for d in shape) > MAX_FOLD_ELEMENTS:
            return None
        fill = node.attributes.get_tensor("value")
        fill_array = np.zeros(1, np.float32) if fill is None else np.asarray(fill.numpy()).reshape(-1)
        return np.full(tuple(int(d) for d in shape), fill_array[0], dtype=fill_array.dtype)
    if node.op_type == "Shape":
        return _static_shape(node)
    if node.op_type in FOLDABLE_OPS:
        return _evaluate(node)
    return None


__all__ = ["FOLDABLE_OPS", "MAX_FOLD_ELEMENTS", "MAX_RANK", "folded_value"]
