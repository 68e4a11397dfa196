"""The table of operators onnxq quantizes, and how each one is quantized.

Every supported op is one :class:`OpRule` in an explicit registry (:func:`register_op`); nothing
outside the table is quantized, and ops of any domain other than the default ONNX one pass through
untouched. The kinds:

* ``WEIGHTED`` (Conv, ConvTranspose, Gemm, MatMul): the activation input and the output get Q/DQ,
  the weight is stored as int8 behind a DequantizeLinear (per-channel on the op's output-channel
  axis, or per-tensor), the bias as int32 with ``scale = input_scale * weight_scale``, zero point 0.
* ``ELEMENTWISE`` (Add, Mul, AveragePool, GlobalAveragePool): every float input and the output get
  their own observed quantization parameters.
* ``SHARED_SCALE`` (Concat): all inputs and the output share one scale and zero point, so the
  integer op is a plain copy.
* ``PASS_THROUGH`` (MaxPool and the shape ops): the output values are a subset/rearrangement of the
  input values, so the output keeps the input's scale and zero point; no observer is added.
* ``FIXED_RANGE`` (Sigmoid, Softmax, Tanh): the output range is known, so its parameters are fixed:
  for ``[lo, hi]`` and ``2**8`` levels, ``scale = (hi - lo) / 256`` and ``zero_point = qmin - lo /
  scale`` — Sigmoid/Softmax ``[0, 1]``: scale 1/256, zero point 0 (uint8) or -128 (int8);
  Tanh ``[-1, 1]``: scale 1/128, zero point 128 (uint8) or 0 (int8).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from onnxq.graph import constant_array
from onnxq.qparams import QParams, qrange


class QuantKind(enum.Enum):
    """How an op is quantized (see the module docstring)."""

    WEIGHTED = "weighted"
    ELEMENTWISE = "elementwise"
    SHARED_SCALE = "shared_scale"
    PASS_THROUGH = "pass_through"
    FIXED_RANGE = "fixed_range"


#: ``(node, weight rank) -> per-channel axis of the weight`` (the axis of the output channels).
AxisFn = Callable[[ir.Node, int], int]
#: ``node -> reason the node cannot be quantized`` (None when it can).
CheckFn = Callable[[ir.Node], "str | None"]


@dataclass(frozen=True)
class OpRule:
    """How one op type (default ONNX domain) is quantized.

    Attributes:
        op_type: The ONNX op type.
        kind: The quantization kind.
        activation_inputs: Input indices quantized as activations; ``None`` means all inputs
            (variadic ops such as Concat).
        activation_outputs: Output indices quantized; ``None`` means all outputs (Split).
        weight_input: Index of the weight input (WEIGHTED only).
        bias_input: Index of the bias input, if the op has one.
        weight_axis: The per-channel axis of the weight for a given node (WEIGHTED only).
        constant_weight_required: When True a non-constant weight leaves the node in float (Conv);
            when False it is quantized as a second activation, per-tensor (MatMul of two tensors).
        fixed_range: The output range ``(lo, hi)`` of FIXED_RANGE ops.
        check: Optional node-specific refusal: returns why this node cannot be quantized.
    """

    op_type: str
    kind: QuantKind
    activation_inputs: tuple[int, ...] | None = (0,)
    activation_outputs: tuple[int, ...] | None = (0,)
    weight_input: int | None = None
    bias_input: int | None = None
    weight_axis: AxisFn | None = None
    constant_weight_required: bool = True
    fixed_range: tuple[float, float] | None = None
    check: CheckFn | None = None

    def __post_init__(self) -> None:
        weighted = self.kind is QuantKind.WEIGHTED
        if weighted != (self.weight_input is not None and self.weight_axis is not None):
            raise ValueError(f"{self.op_type}: WEIGHTED rules need weight_input and weight_axis (only they)")
        if (self.kind is QuantKind.FIXED_RANGE) != (self.fixed_range is not None):
            raise ValueError(f"{self.op_type}: FIXED_RANGE rules need fixed_range (only they)")
        if self.fixed_range is not None and not self.fixed_range[0] <= 0 <= self.fixed_range[1]:
            raise ValueError(f"{self.op_type}: fixed_range must contain 0, got {self.fixed_range}")

    def activation_indices(self, node: ir.Node) -> tuple[int, ...]:
        """The input slots of ``node`` that carry activations (present inputs only)."""
        slots = range(len(node.inputs)) if self.activation_inputs is None else self.activation_inputs
        return tuple(i for i in slots if i < len(node.inputs) and node.inputs[i] is not None)

    def output_indices(self, node: ir.Node) -> tuple[int, ...]:
        """The output slots of ``node`` that carry activations."""
        slots = range(len(node.outputs)) if self.activation_outputs is None else self.activation_outputs
        return tuple(i for i in slots if i < len(node.outputs))


_REGISTRY: dict[str, OpRule] = {}


def register_op(rule: OpRule) -> OpRule:
    """Add ``rule`` to the table; registering an op type twice is an error."""
    if rule.op_type in _REGISTRY:
        raise ValueError(f"op {rule.op_type!r} registered twice")
    _REGISTRY[rule.op_type] = rule
    return rule


def get_rule(op_type: str, domain: str = "") -> OpRule | None:
    """The rule for ``op_type`` in ``domain``, or None when onnxq leaves such nodes in float."""
    if domain not in ("", "ai.onnx"):
        return None
    return _REGISTRY.get(op_type)


def supported_ops() -> tuple[str, ...]:
    """The op types onnxq quantizes, sorted."""
    return tuple(sorted(_REGISTRY))


def fixed_qparams(fixed_range: tuple[float, float], dtype: str) -> QParams:
    """The quantization parameters of a fixed output range over all ``2**8`` levels of ``dtype``."""
    lo, hi = fixed_range
    qmin, _ = qrange(dtype)
    scale = np.float32((hi - lo) / 256.0)
    zero_point = np.array(qmin - round(lo / float(scale)), dtype=np.int64)
    return QParams(np.asarray(scale), zero_point.astype(np.uint8 if dtype == "uint8" else np.int8))


def _int_attr(node: ir.Node, name: str, default: int) -> int:
    attr = node.attributes.get(name)
    return default if attr is None else int(attr.value)


def _gemm_axis(node: ir.Node, rank: int) -> int:
    # B is (K, N) without transB and (N, K) with it; the output channels are N.
    return 0 if _int_attr(node, "transB", 0) else 1


def _pad_check(node: ir.Node) -> str | None:
    mode = node.attributes.get("mode")
    if mode is not None and mode.value != "constant":
        return None
    if len(node.inputs) < 3 or node.inputs[2] is None:
        return None
    value = constant_array(node.inputs[2])
    if value is None:
        return "Pad constant_value is not a constant"
    if np.any(value != 0):
        return "Pad constant_value is not 0 (outside the input's range)"
    return None


def _register_defaults() -> None:
    weighted = QuantKind.WEIGHTED
    register_op(OpRule("Conv", weighted, weight_input=1, bias_input=2, weight_axis=lambda n, r: 0))
    register_op(OpRule("ConvTranspose", weighted, weight_input=1, bias_input=2, weight_axis=lambda n, r: 1))
    register_op(OpRule("Gemm", weighted, weight_input=1, bias_input=2, weight_axis=_gemm_axis,
                       constant_weight_required=False))
    register_op(OpRule("MatMul", weighted, weight_input=1, weight_axis=lambda n, r: r - 1,
                       constant_weight_required=False))
    for op in ("Add", "Mul"):
        register_op(OpRule(op, QuantKind.ELEMENTWISE, activation_inputs=(0, 1)))
    for op in ("AveragePool", "GlobalAveragePool"):
        register_op(OpRule(op, QuantKind.ELEMENTWISE))
    register_op(OpRule("Concat", QuantKind.SHARED_SCALE, activation_inputs=None))
    for op in ("MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Slice", "Resize",
               "DepthToSpace", "SpaceToDepth"):
        register_op(OpRule(op, QuantKind.PASS_THROUGH))
    register_op(OpRule("Split", QuantKind.PASS_THROUGH, activation_outputs=None))
    register_op(OpRule("Pad", QuantKind.PASS_THROUGH, check=_pad_check))
    register_op(OpRule("Sigmoid", QuantKind.FIXED_RANGE, fixed_range=(0.0, 1.0)))
    register_op(OpRule("Softmax", QuantKind.FIXED_RANGE, fixed_range=(0.0, 1.0)))
    register_op(OpRule("Tanh", QuantKind.FIXED_RANGE, fixed_range=(-1.0, 1.0)))


_register_defaults()

__all__ = ["OpRule", "QuantKind", "fixed_qparams", "get_rule", "register_op", "supported_ops"]
