"""The table of operators onnxq quantizes: everything one op needs to know, in its :class:`OpRule`.

Every supported op is one rule in an explicit registry (:func:`register_op`); nothing outside the
table is quantized, and ops of any domain other than the default ONNX one pass through untouched.
A rule says how the op is quantized (its kind), which inputs and outputs carry activations, and
for weighted ops where the weight, the bias and their axes are: the output-channel axis of the
weight (per-channel scales), its reduction axis (per-block scales), the number of output channels
(the bias length), whether onnxruntime needs the weight's zero-point input spelled out, which
activations may be fused after the op, whether a bias ``Add`` after it belongs to it, and whether a
following BatchNormalization folds into it. No other module copies any of this.

The kinds:

* ``WEIGHTED`` (Conv, ConvTranspose, Gemm, MatMul, Gather): the activation input and the output get Q/DQ,
  the weight is stored quantized behind a DequantizeLinear (per channel on the op's output-channel
  axis, per block along its reduction axis, or per tensor), the bias as int32 with
  ``scale = input_scale * weight_scale``, zero point 0.
* ``ELEMENTWISE`` (Add, Mul, AveragePool, GlobalAveragePool): every float input and the output get
  their own observed quantization parameters.
* ``SHARED_SCALE`` (Concat): all inputs and the output share one scale and zero point, so the
  integer op is a plain copy.
* ``PASS_THROUGH`` (MaxPool and the shape ops): the output values are a subset/rearrangement of the
  input values, so the output keeps the input's scale and zero point; no observer is added.
* ``FIXED_RANGE`` (Sigmoid, Softmax, Tanh): the output range is known, so its parameters are fixed
  (:func:`onnxq.qparams.fixed_qparams`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from onnxq.graph import constant_array, int_attr, is_onnx_domain


class QuantKind(enum.Enum):
    """How an op is quantized (see the module docstring)."""

    WEIGHTED = "weighted"
    ELEMENTWISE = "elementwise"
    SHARED_SCALE = "shared_scale"
    PASS_THROUGH = "pass_through"
    FIXED_RANGE = "fixed_range"


#: ``(node, weight rank) -> axis of the weight`` (its output channels, or its reduction axis).
AxisFn = Callable[[ir.Node, int], int]
#: ``(node, weight array) -> number of output channels`` (the length of the bias).
ChannelsFn = Callable[[ir.Node, np.ndarray], int]
#: ``node -> reason the node cannot be quantized`` (None when it can).
CheckFn = Callable[[ir.Node], "str | None"]

#: The activations onnxruntime's QDQ fusion and onnxq's kernels compute inside the op before them.
FUSABLE_ACTIVATIONS = frozenset({"Relu", "LeakyRelu", "Clip"})


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
        weight_axis: The output-channel axis of the weight (per-channel scales; WEIGHTED only).
        reduction_axis: The axis of the weight summed over (per-block scales; WEIGHTED only).
        output_channels: The number of output channels for a node and its weight (the bias length).
        constant_weight_required: When True a non-constant weight leaves the node in float (Conv);
            when False it is quantized as a second activation, per-tensor (MatMul of two tensors).
        keep_weight_zero_point: Write the weight's (all-zero) zero point as an explicit input:
            onnxruntime's QDQ Gemm and MatMul fusions need it; Conv fuses without.
        fusable_activations: Activations that may follow the op inside one quantized unit.
        fuses_bias_add: A following ``Add`` of a constant bias vector belongs to the op (MatMul).
        absorbs_batchnorm: A BatchNormalization reading the op's output folds into its weights.
        fixed_range: The output range ``(lo, hi)`` of FIXED_RANGE ops.
        check: Optional node-specific refusal: returns why this node cannot be quantized.
        weight_ranks: The ranks the op's weight may have, ``(lowest, highest or None)``; a node
            whose weight has another stays float with that reason (the model is invalid there).
    """

    op_type: str
    kind: QuantKind
    activation_inputs: tuple[int, ...] | None = (0,)
    activation_outputs: tuple[int, ...] | None = (0,)
    weight_input: int | None = None
    bias_input: int | None = None
    weight_axis: AxisFn | None = None
    reduction_axis: AxisFn | None = None
    output_channels: ChannelsFn | None = None
    constant_weight_required: bool = True
    keep_weight_zero_point: bool = False
    fusable_activations: frozenset[str] = frozenset()
    fuses_bias_add: bool = False
    absorbs_batchnorm: bool = False
    fixed_range: tuple[float, float] | None = None
    check: CheckFn | None = None
    weight_ranks: tuple[int, int | None] = (1, None)

    def __post_init__(self) -> None:
        weighted = self.kind is QuantKind.WEIGHTED
        present = [
            p is not None
            for p in (self.weight_input, self.weight_axis, self.reduction_axis, self.output_channels)
        ]
        if (weighted and not all(present)) or (not weighted and any(present)):
            raise ValueError(
                f"{self.op_type}: WEIGHTED rules need weight_input, weight_axis, reduction_axis and "
                "output_channels (only they)"
            )
        if (self.kind is QuantKind.FIXED_RANGE) != (self.fixed_range is not None):
            raise ValueError(f"{self.op_type}: FIXED_RANGE rules need fixed_range (only they)")
        if self.fixed_range is not None and not self.fixed_range[0] <= 0 <= self.fixed_range[1]:
            raise ValueError(f"{self.op_type}: fixed_range must contain 0, got {self.fixed_range}")
        unknown = self.fusable_activations - FUSABLE_ACTIVATIONS
        if unknown:
            known = sorted(FUSABLE_ACTIVATIONS)
            raise ValueError(f"{self.op_type}: cannot fuse {sorted(unknown)} (fusable: {known})")

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
    if not is_onnx_domain(domain):
        return None
    return _REGISTRY.get(op_type)


def rule_of(node: ir.Node) -> OpRule | None:
    """The rule for ``node`` (its op type in its domain), or None."""
    return get_rule(node.op_type, node.domain)


def supported_ops() -> tuple[str, ...]:
    """The op types onnxq quantizes, sorted."""
    return tuple(sorted(_REGISTRY))


def fusable_activation_ops() -> frozenset[str]:
    """Every activation some op of the table fuses."""
    return frozenset(a for rule in _REGISTRY.values() for a in rule.fusable_activations)


def _gemm_out_axis(node: ir.Node, rank: int) -> int:
    # B is (K, N) without transB and (N, K) with it; the output channels are N.
    return 0 if int_attr(node, "transB", 0) else 1


def _gemm_reduction_axis(node: ir.Node, rank: int) -> int:
    return 1 - _gemm_out_axis(node, rank)


def _gemm_channels(node: ir.Node, w: np.ndarray) -> int:
    return int(w.shape[_gemm_out_axis(node, w.ndim)])


def _conv_transpose_channels(node: ir.Node, w: np.ndarray) -> int:
    # W is (C_in, C_out / group, k...): axis 1 holds one group's output channels.
    return int(w.shape[1]) * int_attr(node, "group", 1)


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
    acts = FUSABLE_ACTIVATIONS
    register_op(
        OpRule(
            "Conv",
            weighted,
            weight_input=1,
            bias_input=2,
            weight_axis=lambda n, r: 0,
            reduction_axis=lambda n, r: 1,
            output_channels=lambda n, w: int(w.shape[0]),
            fusable_activations=acts,
            absorbs_batchnorm=True,
            weight_ranks=(3, None),
        )
    )
    register_op(
        OpRule(
            "ConvTranspose",
            weighted,
            weight_input=1,
            bias_input=2,
            weight_axis=lambda n, r: 1,
            reduction_axis=lambda n, r: 0,
            output_channels=_conv_transpose_channels,
            fusable_activations=acts,
            absorbs_batchnorm=True,
            weight_ranks=(3, None),
        )
    )
    register_op(
        OpRule(
            "Gemm",
            weighted,
            weight_input=1,
            bias_input=2,
            weight_axis=_gemm_out_axis,
            reduction_axis=_gemm_reduction_axis,
            output_channels=_gemm_channels,
            constant_weight_required=False,
            keep_weight_zero_point=True,
            fusable_activations=acts,
            absorbs_batchnorm=True,
            weight_ranks=(2, 2),
        )
    )
    register_op(
        OpRule(
            "MatMul",
            weighted,
            weight_input=1,
            weight_axis=lambda n, r: r - 1,
            reduction_axis=lambda n, r: r - 2,
            output_channels=lambda n, w: int(w.shape[-1]),
            constant_weight_required=False,
            keep_weight_zero_point=True,
            fusable_activations=acts,
            fuses_bias_add=True,
        )
    )
    # an embedding table: stored int8 per row behind a DequantizeLinear; indices and output stay as they are
    register_op(
        OpRule(
            "Gather",
            weighted,
            weight_input=0,
            activation_inputs=(),
            activation_outputs=(),
            weight_axis=lambda n, r: 0,
            reduction_axis=lambda n, r: r - 1,
            output_channels=lambda n, w: int(w.shape[0]),
        )
    )
    for op in ("Add", "Mul"):
        register_op(OpRule(op, QuantKind.ELEMENTWISE, activation_inputs=(0, 1), fusable_activations=acts))
    for op in ("AveragePool", "GlobalAveragePool"):
        register_op(OpRule(op, QuantKind.ELEMENTWISE))
    register_op(OpRule("Concat", QuantKind.SHARED_SCALE, activation_inputs=None))
    for op in (
        "MaxPool",
        "Reshape",
        "Flatten",
        "Transpose",
        "Squeeze",
        "Unsqueeze",
        "Slice",
        "Resize",
        "DepthToSpace",
        "SpaceToDepth",
    ):
        register_op(OpRule(op, QuantKind.PASS_THROUGH))
    register_op(OpRule("Split", QuantKind.PASS_THROUGH, activation_outputs=None))
    register_op(OpRule("Pad", QuantKind.PASS_THROUGH, check=_pad_check))
    register_op(OpRule("Sigmoid", QuantKind.FIXED_RANGE, fixed_range=(0.0, 1.0)))
    register_op(OpRule("Softmax", QuantKind.FIXED_RANGE, fixed_range=(0.0, 1.0)))
    register_op(OpRule("Tanh", QuantKind.FIXED_RANGE, fixed_range=(-1.0, 1.0)))  # fmt: skip


_register_defaults()

__all__ = [
    "FUSABLE_ACTIVATIONS",
    "OpRule",
    "QuantKind",
    "fusable_activation_ops",
    "get_rule",
    "register_op",
    "rule_of",
    "supported_ops",
]
