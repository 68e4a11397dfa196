"""What is in an ONNX model, from a quantization point of view: the ``onnxq inspect`` summary.

:func:`inspect_model` reads a model (path, ``onnx.ModelProto`` or ``onnx_ir.Model``) into a
:class:`ModelSummary`; :func:`format_summary` renders it as text. The summary holds the opsets, op
counts, which compute nodes run quantized, the bytes of constant tensors by data type (int8 weights
vs fp32), the QuantizeLinear -> DequantizeLinear pairs, and each quantized tensor's scale and zero
point.

A node counts as *quantized* in the QDQ format when every floating-point input it reads comes out
of a DequantizeLinear (integer inputs such as a Reshape's shape do not count), or when it is an
activation (Relu, Clip, LeakyRelu) fused after a quantized node: it reads only that node and feeds
only QuantizeLinear. Operator-format integer ops (QLinearConv, ConvInteger, ...) and onnxq's own ops (domain
``ai.onnxq``, a lowered model) count as quantized, and so does a node reading only their integers.
A weighted op (Conv, Gemm, MatMul, ...) whose weight is a DequantizeLinear of a stored integer
tensor while its activations stay float is *weight-only*. Everything else except Q/DQ and Constant
is reported as float.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir

from onnxq.graph import constant_array, is_onnx_domain, is_op, iter_graphs
from onnxq.io import load_model
from onnxq.planning.ops import fusable_activation_ops, rule_of
from onnxq.planning.prequantized import is_quantization_node

_Q = "QuantizeLinear"
_DQ = "DequantizeLinear"
_FLOAT_DTYPES = frozenset({ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.BFLOAT16, ir.DataType.DOUBLE})


@dataclass(frozen=True)
class NodeRef:
    """A node by name and (domain-qualified) op type."""

    name: str
    op_type: str

    def __str__(self) -> str:
        return f"{self.name} ({self.op_type})"


@dataclass(frozen=True)
class TensorQParams:
    """Quantization parameters of one tensor, as found on its Q or weight DQ node.

    ``kind`` is "activation" (a QuantizeLinear at run time) or "constant" (a DequantizeLinear of a
    stored integer tensor: weights, int32 bias). ``scale``/``zero_point`` hold one entry per
    channel (or per block, flattened, with ``block_size``) when ``axis`` is set, one otherwise;
    they are empty if not constant.
    """

    tensor: str
    kind: str
    dtype: str
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None
    block_size: int | None = None


@dataclass(frozen=True)
class ModelSummary:
    """The quantization-relevant facts of one model (all counts include subgraphs)."""

    name: str
    ir_version: int
    opsets: dict[str, int]
    op_counts: dict[str, int]
    quantized_nodes: tuple[NodeRef, ...]
    float_nodes: tuple[NodeRef, ...]
    constant_bytes: dict[str, int]
    qdq_pairs: int
    file_bytes: int | None = None
    qparams: tuple[TensorQParams, ...] = field(default=())
    weight_only_nodes: tuple[NodeRef, ...] = field(default=())

    @property
    def num_compute_nodes(self) -> int:
        return len(self.quantized_nodes) + len(self.weight_only_nodes) + len(self.float_nodes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (``onnxq inspect --json``): plain dicts, lists and numbers."""
        return asdict(self)


def inspect_model(src: str | os.PathLike[str] | onnx.ModelProto | ir.Model) -> ModelSummary:
    """Summarise ``src``; raises :class:`~onnxq.errors.ModelLoadError` if it cannot be read."""
    model = load_model(src)
    file_bytes = None
    name = model.graph.name or "model"
    if isinstance(src, (str, os.PathLike)):
        name = str(src)
        file_bytes = _file_bytes(Path(src), model)
    ops: Counter[str] = Counter()
    quantized: list[NodeRef] = []
    weight_only: list[NodeRef] = []
    floating: list[NodeRef] = []
    constant_bytes: Counter[str] = Counter()
    pairs = 0
    qparams: list[TensorQParams] = []
    for graph in iter_graphs(model.graph):
        for value in graph.initializers.values():
            if value.const_value is not None:
                constant_bytes[_dtype_name(value.const_value.dtype)] += int(value.const_value.nbytes)
        quantized_ids: set[int] = set()
        for node in graph:  # topological order: producers are classified before their users
            ops[_qualified(node)] += 1
            if node.op_type == "Constant":
                array = constant_array(node.outputs[0])
                if array is not None:
                    constant_bytes[str(array.dtype)] += int(array.nbytes)
                continue
            if node.op_type in (_Q, _DQ):
                pairs += node.op_type == _DQ and _is_from(node.inputs[0], _Q)
                qp = _qparams_of(node)
                if qp is not None:
                    qparams.append(qp)
                continue
            if is_op(node, "DynamicQuantizeLinear"):  # quantizes at run time, like Q; not a compute node
                continue
            if _is_quantized(node, quantized_ids):
                quantized_ids.add(id(node))
                quantized.append(_label(node))
            elif _is_weight_only(node):
                weight_only.append(_label(node))
            else:
                floating.append(_label(node))
    return ModelSummary(
        name=name,
        ir_version=int(model.ir_version),
        opsets={(d or "ai.onnx"): int(v) for d, v in sorted(model.opset_imports.items())},
        op_counts=dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        quantized_nodes=tuple(quantized),
        float_nodes=tuple(floating),
        constant_bytes=dict(sorted(constant_bytes.items(), key=lambda kv: (-kv[1], kv[0]))),
        qdq_pairs=pairs,
        file_bytes=file_bytes,
        qparams=tuple(qparams),
        weight_only_nodes=tuple(weight_only),
    )


def _is_quantized(node: ir.Node, quantized_ids: set[int]) -> bool:
    if is_quantization_node(node):
        return True
    from_dq = from_integer_op = 0
    for value in node.inputs:
        if value is None:
            continue
        if _is_from(value, _DQ):
            from_dq += 1
        elif _is_float(value):
            break
        elif (made := value.producer()) is not None and is_quantization_node(made):
            from_integer_op += 1  # a shape op on an integer tensor (Flatten of a lowered pool)
    else:
        if from_dq or from_integer_op:
            return True
    # an activation fused after a quantized node: reads only it, feeds only Q
    if is_op(node, *fusable_activation_ops()) and node.inputs and node.inputs[0] is not None:
        source = node.inputs[0].producer()
        users = [use.node for out in node.outputs for use in out.uses()]
        return (
            source is not None
            and id(source) in quantized_ids
            and bool(users)
            and all(u.op_type == _Q for u in users)
            and not any(out.is_graph_output() for out in node.outputs)
        )
    return False


def _is_weight_only(node: ir.Node) -> bool:
    rule = rule_of(node)
    if rule is None or rule.weight_input is None or rule.weight_input >= len(node.inputs):
        return False
    weight = node.inputs[rule.weight_input]
    dq = None if weight is None else weight.producer()
    return is_op(dq, _DQ) and constant_array(dq.inputs[0]) is not None  # type: ignore[union-attr]


def _is_float(value: ir.Value) -> bool:
    """Whether ``value`` may carry floating-point data (unknown types count as float unless the
    value is an integer constant)."""
    if value.dtype is not None:
        return value.dtype in _FLOAT_DTYPES
    array = constant_array(value)
    return array is None or np.issubdtype(array.dtype, np.floating)


def _is_from(value: ir.Value | None, op_type: str) -> bool:
    node = None if value is None else value.producer()
    return is_op(node, op_type)


def _qparams_of(node: ir.Node) -> TensorQParams | None:
    """Q nodes describe activations; DQ nodes only when they read a stored integer tensor."""
    x = node.inputs[0] if node.inputs else None
    if x is None:
        return None
    x_array = constant_array(x)
    if node.op_type == _DQ and x_array is None:
        return None  # the DQ half of a Q/DQ pair: its Q already described the tensor
    scale = constant_array(node.inputs[1]) if len(node.inputs) > 1 else None
    zp_value = node.inputs[2] if len(node.inputs) > 2 else None
    zp = constant_array(zp_value)
    if node.op_type == _Q:
        dtype = _dtype_name(zp_value.dtype) if zp_value is not None and zp_value.dtype else "uint8"
        if zp is not None:
            dtype = str(zp.dtype)
    else:
        assert x_array is not None
        dtype = str(x_array.dtype)
    axis_attr = node.attributes.get("axis")
    scale_t = () if scale is None else tuple(float(s) for s in np.ravel(scale))
    zp_t = (
        tuple(0 for _ in scale_t)
        if zp_value is None
        else (() if zp is None else tuple(int(z) for z in np.ravel(zp)))
    )
    block_attr = node.attributes.get("block_size")
    block_size = block_attr.as_int() if block_attr is not None and block_attr.as_int() > 0 else None
    per_channel = scale is not None and (block_size is not None or (np.ndim(scale) == 1 and scale.size > 1))
    axis = (axis_attr.as_int() if axis_attr is not None else 1) if per_channel else None
    return TensorQParams(
        tensor=x.name or "?",
        kind="activation" if node.op_type == _Q else "constant",
        dtype=dtype,
        scale=scale_t,
        zero_point=zp_t,
        axis=axis,
        block_size=block_size,
    )


def _file_bytes(path: Path, model: ir.Model) -> int:
    """The model file plus any external data files it refers to."""
    total = path.stat().st_size
    seen: set[str] = set()
    for graph in iter_graphs(model.graph):
        for value in graph.initializers.values():
            tensor = value.const_value
            if isinstance(tensor, ir.ExternalTensor) and str(tensor.path) not in seen:
                seen.add(str(tensor.path))
                total += Path(tensor.path).stat().st_size
    return total


def _dtype_name(dtype: ir.DataType | None) -> str:
    if dtype is None:
        return "unknown"
    try:
        return str(dtype.numpy())
    except (TypeError, ValueError):
        return dtype.name.lower()


def _qualified(node: ir.Node) -> str:
    return node.op_type if is_onnx_domain(node.domain) else f"{node.domain}.{node.op_type}"


def _label(node: ir.Node) -> NodeRef:
    return NodeRef(node.name or "<unnamed>", _qualified(node))


def format_summary(summary: ModelSummary, *, scales: bool = False, nodes: bool = False) -> str:
    """The summary as text: a header, a per-op table, the float nodes; with ``nodes`` every
    quantized node too, with ``scales`` each quantized tensor's scale and zero point."""
    lines = [
        f"model       {summary.name}" + (f" ({_size(summary.file_bytes)})" if summary.file_bytes else "")
    ]
    lines.append(
        f"opsets      {', '.join(f'{d} {v}' for d, v in summary.opsets.items())} (IR {summary.ir_version})"
    )
    weight_only = f"{len(summary.weight_only_nodes)} weight-only, " if summary.weight_only_nodes else ""
    lines.append(
        f"nodes       {summary.num_compute_nodes} compute: {len(summary.quantized_nodes)} quantized, "
        f"{weight_only}{len(summary.float_nodes)} float; {summary.qdq_pairs} Q/DQ pairs"
    )
    consts = ", ".join(f"{dtype} {_size(n)}" for dtype, n in summary.constant_bytes.items()) or "none"
    lines.append(f"constants   {consts}")
    lines.append("")
    width = max([24, *(len(op) + 2 for op in summary.op_counts)])
    lines.append(f"{'op':<{width}}{'count':>7}{'quantized':>11}")
    quantized_by_op = Counter(n.op_type for n in summary.quantized_nodes)
    for op, count in summary.op_counts.items():
        q = str(quantized_by_op[op]) if op not in (_Q, _DQ, "Constant") else ""
        lines.append(f"{op:<{width}}{count:>7}{q:>11}")
    if summary.float_nodes:
        lines += ["", "float nodes:", *(f"  {label}" for label in summary.float_nodes)]
    if nodes and summary.quantized_nodes:
        lines += ["", "quantized nodes:", *(f"  {label}" for label in summary.quantized_nodes)]
    if nodes and summary.weight_only_nodes:
        lines += ["", "weight-only nodes:", *(f"  {label}" for label in summary.weight_only_nodes)]
    if scales:
        lines += ["", f"{'tensor':<40} {'kind':<10} {'dtype':<6} {'scale':<38} zero point"]
        for qp in summary.qparams:
            lines.append(f"{qp.tensor:<40} {qp.kind:<10} {qp.dtype:<6} {_scale_text(qp):<38} {_zp_text(qp)}")
        if not summary.qparams:
            lines.append("(no quantized tensors)")
    return "\n".join(lines)


def _scale_text(qp: TensorQParams) -> str:
    if not qp.scale:
        return "(not constant)"
    if qp.axis is None:
        return f"{qp.scale[0]:.6g}"
    where = f"axis {qp.axis}" if qp.block_size is None else f"axis {qp.axis}, blocks of {qp.block_size}"
    return f"{where}: {len(qp.scale)} in [{min(qp.scale):.4g}, {max(qp.scale):.4g}]"


def _zp_text(qp: TensorQParams) -> str:
    if not qp.zero_point:
        return "(not constant)"
    distinct = sorted(set(qp.zero_point))
    return (
        str(distinct[0])
        if len(distinct) == 1
        else f"{len(distinct)} distinct in [{distinct[0]}, {distinct[-1]}]"
    )


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    if n < 1024:
        return f"{n} B"
    if n < 1024**2:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024**2:.2f} MiB"


__all__ = ["ModelSummary", "NodeRef", "TensorQParams", "format_summary", "inspect_model"]
