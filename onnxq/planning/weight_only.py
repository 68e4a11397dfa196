"""The plan of a weight-only quantization: which weights are stored as integers, how, and why not.

Weight-only quantization stores constant weights as int8 (one scale per output channel) or as
4-bit integers (one scale, and with ``symmetric=False`` one zero point, per block of
``block_size`` consecutive elements along the axis the op sums over); activations stay float, so
it needs no calibration data. :func:`build_weight_only_plan` decides per main-graph node:

==========  ==========================  ===================  ==================================
op          weight                      int8 channel axis    4-bit block axis (reduction)
==========  ==========================  ===================  ==================================
MatMul      input 1, ``[K, N]``         1 (N)                0 (K)
Gemm        input 1, ``[K, N]`` or      1, or 0 with         0, or 1 with ``transB=1``
            ``[N, K]`` (``transB``)     ``transB=1``
Conv        input 1, ``[M, C/g, k...]`` 0 (M)                1 of the weight viewed as
                                                             ``[M, C/g * k...]`` (``flatten``)
Gather      input 0, ``[V, H]``,        0 (a row)            1 (H, the hidden axis)
            ``axis=0`` (an embedding)
==========  ==========================  ===================  ==================================

Each planned node is ``dequantize`` — the integers behind a ``DequantizeLinear`` feeding the float
op (:mod:`onnxq.passes.dequantize_blocks`) — or, in the ``onnxruntime`` format, a MatMul or Gemm
with a 4-bit weight is ``matmul_nbits``: ``com.microsoft.MatMulNBits`` (a Gemm as MatMulNBits +
Add; :mod:`onnxq.passes.matmul_nbits`); in the ``onnxq`` format the same node becomes
``ai.onnxq.DynamicMatMulNBits`` (onnxq's int4 kernel, activations quantized to int8 per row at
run time; a Gemm's bias is its input). What the op cannot take (int8 weights — the ``--mode
dynamic --format onnxq`` kernel is the int8 one —, a Gemm with ``transA=1`` or a bias that is not
constant, and for ``onnxq`` blocks under 32) is written in the qdq form, and the plan's notes say
so. Everything else stays float with the reason (a weight that is not a constant is one).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from onnxq.errors import ConfigError, enum_member
from onnxq.graph import constant_array, int_attr, is_onnx_domain
from onnxq.planning.dynamic import weight_refusal
from onnxq.qconfig import QSpec
from onnxq.scheme import Granularity, PerBlock, PerChannel

#: The op types quantize_weight_only knows.
WEIGHT_ONLY_OP_TYPES = ("MatMul", "Gemm", "Conv", "Gather")
#: The weight dtypes it stores; 4-bit blocks are a power of two from this size (as MatMulNBits needs).
WEIGHT_ONLY_DTYPES = ("int8", "int4", "uint4")
MIN_BLOCK_SIZE = 16
#: The smallest block onnxq's int4 kernel (native/include/onnxq/blockwise.h) takes.
ONNXQ_MIN_BLOCK_SIZE = 32


class WeightOnlyFormat(enum.Enum):
    """Which ops the weight-only model is written with."""

    QDQ = "qdq"  # DequantizeLinear (block_size for 4 bits, opset 21) feeding the float op
    ONNXRUNTIME = "onnxruntime"  # com.microsoft.MatMulNBits for 4-bit MatMul / Gemm, qdq elsewhere
    ONNXQ = "onnxq"  # ai.onnxq.DynamicMatMulNBits (onnxq's int4 kernel) for 4-bit MatMul / Gemm


class WeightOnlyAction(enum.Enum):
    """What a planned node becomes (the report's ``kind``)."""

    DEQUANTIZE = "weight_only"
    MATMUL_NBITS = "matmul_nbits"  # com.microsoft.MatMulNBits or ai.onnxq.DynamicMatMulNBits (by format)


@dataclass(frozen=True)
class WeightOnlyDecision:
    """One node: its ``action`` and how its weight input ``weight_input`` is stored (``spec``,
    ``granularity`` with its axis resolved on the weight, or on the weight flattened to 2-D when
    ``flatten``), or the ``reason`` it stays float."""

    name: str
    op_type: str
    action: WeightOnlyAction | None
    reason: str | None
    weight_input: int = -1
    spec: QSpec | None = None
    granularity: Granularity | None = None
    flatten: bool = False
    anchor: str | None = None

    @property
    def quantized(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class WeightOnlyPlan:
    """Every main-graph node's decision, in graph order, and notes for the report."""

    decisions: tuple[WeightOnlyDecision, ...]
    format: WeightOnlyFormat
    spec: QSpec
    notes: tuple[str, ...] = ()

    def planned(self, *actions: WeightOnlyAction) -> tuple[WeightOnlyDecision, ...]:
        return tuple(d for d in self.decisions if d.quantized and d.action in actions)


def weight_only_spec(dtype: str, block_size: int, symmetric: bool) -> QSpec:
    """The weight QSpec: int8 per channel, int4/uint4 per block; bad values are a one-line ConfigError."""
    if dtype not in WEIGHT_ONLY_DTYPES:
        raise ConfigError(f"unknown weight dtype {dtype!r} for weight-only quantization "
                          f"(expected one of {', '.join(WEIGHT_ONLY_DTYPES)})")  # fmt: skip
    if not isinstance(symmetric, bool):
        raise ConfigError(f"symmetric must be a bool, got {symmetric!r}")
    if dtype == "int8":
        return QSpec("int8", symmetric, PerChannel())
    b = block_size
    if isinstance(b, bool) or not isinstance(b, int) or b < MIN_BLOCK_SIZE or b & (b - 1):
        raise ConfigError(
            f"block_size must be a power of two >= {MIN_BLOCK_SIZE} (32, 64, 128...), got {b!r}"
        )
    return QSpec(dtype, symmetric, PerBlock(block_size=b))


def weight_only_format(name: str) -> WeightOnlyFormat:
    """The :class:`WeightOnlyFormat` called ``name``; another name is a ConfigError."""
    return enum_member(WeightOnlyFormat, name, "weight-only format")


def check_weight_only_op_types(op_types: Iterable[str] | None) -> frozenset[str]:
    """``op_types`` as a set (None: all of :data:`WEIGHT_ONLY_OP_TYPES`); an unknown name is a ConfigError."""
    chosen = frozenset(WEIGHT_ONLY_OP_TYPES if op_types is None else [op_types] if isinstance(op_types, str)
                       else op_types)  # fmt: skip
    unknown = sorted(chosen - set(WEIGHT_ONLY_OP_TYPES))
    if unknown:
        raise ConfigError(f"unknown op type(s) for weight-only quantization: {', '.join(map(repr, unknown))} "
                          f"(known: {', '.join(WEIGHT_ONLY_OP_TYPES)})")  # fmt: skip
    return chosen


def build_weight_only_plan(
    graph: ir.Graph,
    spec: QSpec,
    op_types: frozenset[str],
    fmt: WeightOnlyFormat,
    source_op_types: Mapping[str, str] | None = None,
) -> WeightOnlyPlan:
    """Decide what each node of ``graph`` (prepared: every node named) becomes (module docstring).

    ``source_op_types`` gives a node's op type in the user's model when a structural pass changed
    it (MatMul + Add fused into a Gemm): ``op_types`` is matched against that one.
    """
    decisions, notes = [], []
    for node in graph:
        op_type = (source_op_types or {}).get(node.name or "", node.op_type)
        decision = _decide(node, op_type, spec, op_types, fmt)
        if isinstance(decision, tuple):
            decision, note = decision
            notes.append(note)
        decisions.append(decision)
    return WeightOnlyPlan(tuple(decisions), fmt, spec, tuple(notes))


def _decide(
    node: ir.Node, op_type: str, spec: QSpec, op_types: frozenset[str], fmt: WeightOnlyFormat
) -> WeightOnlyDecision | tuple[WeightOnlyDecision, str]:
    name = node.name or ""

    def refuse(reason: str) -> WeightOnlyDecision:
        return WeightOnlyDecision(name, node.op_type, None, reason)

    if not is_onnx_domain(node.domain):
        return refuse(f"op domain {node.domain!r} is passed through untouched")
    if node.op_type not in WEIGHT_ONLY_OP_TYPES:
        return refuse(f"op type {node.op_type} has no weight to quantize")
    if op_type not in op_types:
        return refuse(f"op type {op_type} is not among the op types asked for")
    layout = _weight_layout(node)
    if isinstance(layout, str):
        return refuse(layout)
    index, channel_axis, block_axis, flatten = layout
    value = node.inputs[index]
    assert value is not None
    why = weight_refusal(value)
    if why is not None:
        return refuse(why)
    if isinstance(spec.granularity, PerBlock):
        granularity: Granularity = PerBlock(block_axis, spec.granularity.block_size)
    else:
        granularity = PerChannel(channel_axis)
    decision = WeightOnlyDecision(name, node.op_type, WeightOnlyAction.DEQUANTIZE, None, index, spec,
                                  granularity, flatten)  # fmt: skip
    if fmt is WeightOnlyFormat.QDQ or node.op_type not in ("MatMul", "Gemm"):
        return decision
    why = _nbits_refusal(node, spec, fmt)
    if why is not None:
        return decision, f"{name}: {why}: written as DequantizeLinear + {node.op_type} (qdq form)"
    return WeightOnlyDecision(name, node.op_type, WeightOnlyAction.MATMUL_NBITS, None, index, spec,
                              granularity)  # fmt: skip


def _weight_layout(node: ir.Node) -> tuple[int, int, int, bool] | str:
    """``(weight input, int8 channel axis, 4-bit block axis, flatten)`` of ``node``, or why it has none."""
    op = node.op_type
    index = 0 if op == "Gather" else 1
    weight = constant_array(node.inputs[index]) if index < len(node.inputs) else None
    if op == "MatMul":
        if weight is not None and weight.ndim != 2:
            return f"MatMul weight '{node.inputs[1].name}' has rank {weight.ndim}, not 2"  # type: ignore[union-attr]
        return 1, 1, 0, False
    if op == "Gemm":
        return (1, 0, 1, False) if int_attr(node, "transB", 0) else (1, 1, 0, False)
    if op == "Conv":
        if weight is not None and weight.ndim < 3:
            return f"Conv weight '{node.inputs[1].name}' has rank {weight.ndim}"  # type: ignore[union-attr]
        return 1, 0, 1, True
    if int_attr(node, "axis", 0) != 0 or (weight is not None and weight.ndim != 2):
        return "Gather is not an embedding lookup (a 2-D table read along axis 0)"
    return 0, 0, 1, False


def _nbits_refusal(node: ir.Node, spec: QSpec, fmt: WeightOnlyFormat) -> str | None:
    """Why ``fmt``'s 4-bit op (MatMulNBits, DynamicMatMulNBits) cannot compute ``node`` (None: it can)."""
    op = "MatMulNBits" if fmt is WeightOnlyFormat.ONNXRUNTIME else "onnxq's DynamicMatMulNBits"
    if spec.dtype == "int8":
        return f"{op} is written for 4-bit weights only"
    block = spec.granularity.block_size  # type: ignore[union-attr]
    if fmt is WeightOnlyFormat.ONNXQ and block < ONNXQ_MIN_BLOCK_SIZE:
        return f"{op} takes blocks of {ONNXQ_MIN_BLOCK_SIZE} or more, not {block}"
    if node.op_type == "Gemm":
        if int_attr(node, "transA", 0):
            return "Gemm with transA=1"
        if len(node.inputs) > 2 and node.inputs[2] is not None:
            bias = constant_array(node.inputs[2])
            if bias is None:
                return f"Gemm bias '{node.inputs[2].name}' is not a constant"
            if bias.dtype != np.float32:
                return f"Gemm bias '{node.inputs[2].name}' is {bias.dtype}"
    return None


__all__ = [
    "WEIGHT_ONLY_DTYPES",
    "WEIGHT_ONLY_OP_TYPES",
    "WeightOnlyAction",
    "WeightOnlyDecision",
    "WeightOnlyFormat",
    "WeightOnlyPlan",
    "build_weight_only_plan",
    "check_weight_only_op_types",
    "weight_only_format",
    "weight_only_spec",
]
