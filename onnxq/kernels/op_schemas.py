"""onnx schemas of onnxq's custom ops (domain ``ai.onnxq``), so ``onnx.checker`` and onnx's shape
inference know them.

:data:`OPS` is the one table of the domain: every op's inputs and outputs (name, type, and
``"optional"`` or, for the last input only, ``"variadic"``: one or more values of that type),
attributes and output-shape rule. ``schemas/ai.onnxq.opset1.json`` is the same table as a file
for other tools (a test keeps the two in step); docs/custom_ops.md gives the arithmetic and
``native/src/ort/`` the kernels. :func:`register_op_schemas` adds the schemas to onnx's registry
(once per process; onnx has no way to remove one); :func:`onnxq.lower.lower` calls it, so a
lowered model passes ``onnx.checker.check_model(model, full_check=True, check_custom_domain=True)``
and its shapes infer (with onnx >= 1.17, which takes shape-inference functions from Python).

Shape rules (NHWC activations; a dimension that is not known stays unknown):

* ``layout``: ``y`` has ``x``'s shape, or with ``layout="nchw_to_nhwc"`` / ``"nhwc_to_nchw"``
  the 4-D permutation ``[N, C, H, W] -> [N, H, W, C]`` / back;
* ``conv_nhwc``: ``x [N, H, W, C]``, ``w [O, C / group, kH, kW]`` ->
  ``[N, (H + pt + pb - d (kH - 1) - 1) // s + 1, (W ...) // s + 1, O]``;
* ``pool_nhwc``: the same with ``kernel_shape`` and ``C`` channels kept, rounding up with
  ``ceil_mode`` (and, as ONNX, a last window must start inside the padded input);
* ``global_pool_nhwc``: ``[N, 1, 1, C]``;
* ``gemm``: ``a [M, K]``, ``w [N, K]`` (``transB = 1``) or ``[K, N]`` -> ``[M, N]``;
* ``matmul``: ``a [..., K]``, ``w [K, N]`` -> ``[..., N]``;
* ``matmul_nbits``: ``a [..., K]`` -> ``[..., N]`` with ``N`` the attribute;
* ``concat``: the tensors (inputs 4 on) of one rank, concatenated along ``axis`` (negative from
  the end): the sum of their extents there, the others as they are;
* ``same_as_first_input``;
* ``rnn`` (every output): ``X [T, N, I]`` (``layout`` 1: ``[N, T, I]``) -> ``Y [T, D, N, H]``
  (``[N, T, D, H]``) and each state ``[D, N, H]`` (``[N, D, H]``), ``D`` = 2 when ``direction``
  is ``"bidirectional"``, ``H`` = ``hidden_size``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import onnx
from onnx import TensorProto, helper

from onnxq.kernels.custom_ops import DOMAIN, OPSET


@dataclass(frozen=True)
class OpDef:
    """One op of the domain: ``(name, type[, "optional"])`` per input and output."""

    inputs: tuple[tuple[str, ...], ...]
    outputs: tuple[tuple[str, ...], ...]
    attributes: dict[str, str]
    shape: str


def _q(*names: str) -> tuple[tuple[str, ...], ...]:
    """A quantized tensor's triple per name: value (uint8), its scale and zero point."""
    return tuple(
        t
        for n in names
        for t in ((n, "tensor(uint8)"), (f"{n}_scale", "tensor(float)"), (f"{n}_zero_point", "tensor(uint8)"))
    )


def _weight(name: str) -> tuple[tuple[str, ...], ...]:
    """A recurrent op's int8 weight, its scales and zero points."""
    scale, zero_point = (f"{name}_scale", "tensor(float)"), (f"{name}_zero_point", "tensor(int8)")
    return ((name, "tensor(int8)"), scale, zero_point)


def _states(kind: str, prefix: str, out: bool = False) -> tuple[tuple[str, ...], ...]:
    """``initial_h`` (and ``initial_c``), optional inputs, or the outputs ``Y_h`` (and ``Y_c``)."""
    names = [f"{prefix}_h", f"{prefix}_c"][: 2 if kind == "LSTM" else 1]
    return tuple((n, "tensor(float)") if out else (n, "tensor(float)", "optional") for n in names)


WEIGHT = (("w", "tensor(int8)"), ("w_scale", "tensor(float)"), ("w_zero_point", "tensor(int8)"))
Y_QPARAMS = (("y_scale", "tensor(float)"), ("y_zero_point", "tensor(uint8)"))
BIAS = (("B", "tensor(int32)", "optional"),)
U8_OUT = (("y", "tensor(uint8)"),)
CLAMP = {"qmin": "int", "qmax": "int"}

OPS: dict[str, OpDef] = {
    "Quantize": OpDef(
        (("x", "tensor(float)"), ("scale", "tensor(float)"), ("zero_point", "tensor(uint8)")),
        U8_OUT, {"layout": "string"}, "layout",
    ),
    "Dequantize": OpDef(
        (("x", "tensor(uint8)"), ("scale", "tensor(float)"), ("zero_point", "tensor(uint8)")),
        (("y", "tensor(float)"),), {"layout": "string"}, "layout",
    ),
    "QLinearConv": OpDef(
        (*_q("x"), *WEIGHT, *Y_QPARAMS, *BIAS), U8_OUT,
        {"group": "int", "strides": "ints", "pads": "ints", "dilations": "ints", **CLAMP}, "conv_nhwc",
    ),
    "QLinearAdd": OpDef((*_q("a", "b"), *Y_QPARAMS), U8_OUT, dict(CLAMP), "same_as_first_input"),
    "MaxPool": OpDef(
        (("x", "tensor(uint8)"),), U8_OUT,
        {"kernel_shape": "ints", "strides": "ints", "pads": "ints", "dilations": "ints", "ceil_mode": "int"},
        "pool_nhwc",
    ),
    "QLinearGlobalAveragePool": OpDef((*_q("x"), *Y_QPARAMS), U8_OUT, {}, "global_pool_nhwc"),
    "QGemm": OpDef((*_q("a"), *WEIGHT, *Y_QPARAMS, *BIAS), U8_OUT, {"transB": "int", **CLAMP}, "gemm"),
    "QLinearConcat": OpDef(
        (*Y_QPARAMS, ("x_scales", "tensor(float)"), ("x_zero_points", "tensor(uint8)"),
         ("x", "tensor(uint8)", "variadic")),
        U8_OUT, {"axis": "int"}, "concat",
    ),
    "DynamicMatMul": OpDef(
        (("a", "tensor(float)"), *WEIGHT, ("B", "tensor(float)", "optional")),
        (("y", "tensor(float)"),), {}, "matmul",
    ),
    "DynamicMatMulNBits": OpDef(
        (("a", "tensor(float)"), ("B", "tensor(uint8)"), ("scales", "tensor(float)"),
         ("zero_points", "tensor(uint8)", "optional"), ("bias", "tensor(float)", "optional")),
        (("y", "tensor(float)"),), {"K": "int", "N": "int", "bits": "int", "block_size": "int"},
        "matmul_nbits",
    ),
    **{
        f"Dynamic{kind}": OpDef(
            (("X", "tensor(float)"), *_weight("W"), *_weight("R"), ("B", "tensor(float)", "optional"),
             ("sequence_lens", "tensor(int32)", "optional"), *_states(kind, "initial")),
            (("Y", "tensor(float)"), *_states(kind, "Y", out=True)),
            {"direction": "string", "hidden_size": "int", "layout": "int",
             **({"linear_before_reset": "int"} if kind == "GRU" else {})},
            "rnn",
        )
        for kind in ("LSTM", "GRU", "RNN")
    },
}  # fmt: skip

#: Where QLinearConcat's tensors start (its qparams come first: only the last input is variadic).
CONCAT_TENSORS = 4


def ops_document() -> dict[str, object]:
    """:data:`OPS` as the JSON document ``schemas/ai.onnxq.opset1.json`` holds."""
    return {
        "domain": DOMAIN,
        "version": OPSET,
        "ops": {
            name: {
                "inputs": [list(p) for p in op.inputs],
                "outputs": [list(p) for p in op.outputs],
                "attributes": dict(op.attributes),
                "shape": op.shape,
            }
            for name, op in OPS.items()
        },
    }


# ------------------------------------------------------------------------------- shape rules

Dim = int | str | None  # a size, a symbolic name, or unknown


def _dims(ctx: onnx.shape_inference.InferenceContext, index: int) -> list[Dim] | None:
    if index >= ctx.get_num_inputs() or not ctx.has_input(index):
        return None
    t = ctx.get_input_type(index)
    if t is None or not t.tensor_type.HasField("shape"):
        return None
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.tensor_type.shape.dim
    ]


def _ints(ctx: onnx.shape_inference.InferenceContext, name: str, default: Sequence[int]) -> list[int]:
    attr = ctx.get_attribute(name)
    return list(attr.ints) if attr is not None else list(default)


def _int(ctx: onnx.shape_inference.InferenceContext, name: str, default: int) -> int:
    attr = ctx.get_attribute(name)
    return int(attr.i) if attr is not None else default


def _window(
    size: Dim, kernel: Dim, stride: int, pads: tuple[int, int], dilation: int, ceil: bool = False
) -> Dim:
    """Output length along one axis (None when unknown or empty)."""
    if not isinstance(size, int) or not isinstance(kernel, int) or stride < 1:
        return None
    span = size + pads[0] + pads[1] - dilation * (kernel - 1) - 1
    if span < 0:
        return None
    out = -(-span // stride) + 1 if ceil else span // stride + 1
    if ceil and (out - 1) * stride >= size + pads[0]:
        out -= 1  # the last window must start inside the input or its leading pad
    return out


def _layout(ctx: onnx.shape_inference.InferenceContext) -> list[Dim] | None:
    x = _dims(ctx, 0)
    attr = ctx.get_attribute("layout")
    layout = attr.s.decode() if attr is not None else "same"
    if x is None or layout == "same" or len(x) != 4:
        return x
    return [x[0], x[2], x[3], x[1]] if layout == "nchw_to_nhwc" else [x[0], x[3], x[1], x[2]]


def _conv_nhwc(ctx: onnx.shape_inference.InferenceContext) -> list[Dim] | None:
    x, w = _dims(ctx, 0), _dims(ctx, 3)
    if x is None or len(x) != 4:
        return None
    strides, dilations = _ints(ctx, "strides", (1, 1)), _ints(ctx, "dilations", (1, 1))
    pads = _ints(ctx, "pads", (0, 0, 0, 0))
    kernel: list[Dim] = w[2:4] if w is not None and len(w) == 4 else [None, None]
    spatial = [
        _window(x[1 + i], kernel[i], strides[i], (pads[i], pads[i + 2]), dilations[i]) for i in range(2)
    ]
    return [x[0], *spatial, w[0] if w is not None and len(w) == 4 else None]


def _pool_nhwc(ctx: onnx.shape_inference.InferenceContext) -> list[Dim] | None:
    x = _dims(ctx, 0)
    if x is None or len(x) != 4:
        return None
    kernel = _ints(ctx, "kernel_shape", (1, 1))
    strides, dilations = _ints(ctx, "strides", (1, 1)), _ints(ctx, "dilations", (1, 1))
    pads, ceil = _ints(ctx, "pads", (0, 0, 0, 0)), bool(_int(ctx, "ceil_mode", 0))
    spatial = [
        _window(x[1 + i], kernel[i], strides[i], (pads[i], pads[i + 2]), dilations[i], ceil) for i in range(2)
    ]
    return [x[0], *spatial, x[3]]


def _global_pool_nhwc(ctx: onnx.shape_inference.InferenceContext) -> list[Dim] | None:
    x = _dims(ctx, 0)
    return None if x is None or len(x) != 4 else [x[0], 1, 1, x[3]]


def _gemm(ctx: onnx.shape_inference.InferenceContext) -> list[Dim] | None:
    a, w = _dims(ctx, 0), _dims(ctx, 3)
    if a is None or len(a) != 2:
        return None
    n = None if w is None or len(w) != 2 else (w[0] if _int(ctx, "transB", 0) else w[1])
    return [a[0], n]


def _matmul(ctx: onnx.shape_inference.InferenceContext) -> list[Dim] | None:
    a, w = _dims(ctx, 0), _dims(ctx, 1)
    if a is None or not a:
        return None
    return [*a[:-1], w[1] if w is not None and len(w) == 2 else None]


def _matmul_nbits(ctx: onnx.shape_inference.InferenceContext) -> list[Dim] | None:
    a = _dims(ctx, 0)
    return None if a is None or not a else [*a[:-1], _int(ctx, "N", 0) or None]


def _concat(ctx: onnx.shape_inference.InferenceContext) -> list[Dim] | None:
    shapes = [_dims(ctx, i) for i in range(CONCAT_TENSORS, ctx.get_num_inputs())]
    known = [s for s in shapes if s is not None]
    if not known or any(len(s) != len(known[0]) for s in known):
        return None
    rank, axis = len(known[0]), _int(ctx, "axis", 0)
    if not -rank <= axis < rank:
        return None
    axis %= rank
    out: list[Dim] = [next((s[d] for s in known if s[d] is not None), None) for d in range(rank)]
    extents = [s[axis] if s is not None else None for s in shapes]
    out[axis] = sum(extents) if all(isinstance(e, int) for e in extents) else None  # type: ignore[arg-type]
    return out


def _rnn(ctx: onnx.shape_inference.InferenceContext) -> list[list[Dim] | None]:
    """Every output's shape: ``Y`` then the states (module docstring)."""
    x = _dims(ctx, 0)
    attr = ctx.get_attribute("direction")
    dirs = 2 if attr is not None and attr.s == b"bidirectional" else 1
    hidden: Dim = _int(ctx, "hidden_size", 0) or None
    layout = _int(ctx, "layout", 0)
    steps, batch = (None, None) if x is None or len(x) != 3 else ((x[1], x[0]) if layout else (x[0], x[1]))
    y = [batch, steps, dirs, hidden] if layout else [steps, dirs, batch, hidden]
    state = [batch, dirs, hidden] if layout else [dirs, batch, hidden]
    return [y, *([state] * (ctx.get_num_outputs() - 1))]


#: Rules that give every output's shape (the others give output 0's).
MULTI_OUTPUT = {"rnn": _rnn}

SHAPE_RULES: dict[str, Callable[[onnx.shape_inference.InferenceContext], list[Dim] | None]] = {
    "layout": _layout,
    "conv_nhwc": _conv_nhwc,
    "pool_nhwc": _pool_nhwc,
    "global_pool_nhwc": _global_pool_nhwc,
    "gemm": _gemm,
    "matmul": _matmul,
    "matmul_nbits": _matmul_nbits,
    "concat": _concat,
    "same_as_first_input": lambda ctx: _dims(ctx, 0),
}

_ELEM = {"tensor(float)": TensorProto.FLOAT, "tensor(uint8)": TensorProto.UINT8}
_ATTR = {
    "int": onnx.defs.OpSchema.AttrType.INT,
    "ints": onnx.defs.OpSchema.AttrType.INTS,
    "string": onnx.defs.OpSchema.AttrType.STRING,
}


def _inference(op: OpDef) -> Callable[[onnx.shape_inference.InferenceContext], None]:
    elem = _ELEM[op.outputs[0][1]]

    def infer(ctx: onnx.shape_inference.InferenceContext) -> None:
        multi = MULTI_OUTPUT.get(op.shape)
        shapes = multi(ctx) if multi is not None else [SHAPE_RULES[op.shape](ctx)]
        for index, dims in enumerate(shapes):
            shape = None if dims is None else [d if d is not None else "" for d in dims]
            out = helper.make_tensor_type_proto(elem, shape)
            if dims is not None:  # unknown dims: no value, no name
                for d, value in zip(out.tensor_type.shape.dim, dims, strict=True):
                    if value is None:
                        d.ClearField("dim_param")
            ctx.set_output_type(index, out)

    return infer


def _schema(name: str, op: OpDef) -> onnx.defs.OpSchema:
    formal = onnx.defs.OpSchema.FormalParameter
    option = onnx.defs.OpSchema.FormalParameterOption
    types: dict[str, str] = {}

    def param(p: tuple[str, ...]) -> onnx.defs.OpSchema.FormalParameter:
        constraint = "T_" + p[1][len("tensor(") : -1]
        types[constraint] = p[1]
        kinds = {"optional": option.Optional, "variadic": option.Variadic}
        return formal(p[0], constraint, param_option=kinds[p[2]] if len(p) > 2 else option.Single)

    inputs, outputs = [param(p) for p in op.inputs], [param(p) for p in op.outputs]
    schema = onnx.defs.OpSchema(
        name, DOMAIN, OPSET, f"onnxq {name} (docs/custom_ops.md)",
        inputs=inputs, outputs=outputs,
        type_constraints=[(c, [t], c) for c, t in types.items()],
        attributes=[onnx.defs.OpSchema.Attribute(a, _ATTR[t], a) for a, t in op.attributes.items()],
    )  # fmt: skip
    if hasattr(schema, "set_type_and_shape_inference_function"):  # onnx >= 1.17
        schema.set_type_and_shape_inference_function(_inference(op))
    return schema


def register_op_schemas() -> None:
    """Register every op of :data:`OPS` with onnx's schema registry (does nothing the second time)."""
    for name, op in OPS.items():
        if not onnx.defs.has(name, OPSET, DOMAIN):
            onnx.defs.register_schema(_schema(name, op))


__all__ = ["CONCAT_TENSORS", "OPS", "SHAPE_RULES", "OpDef", "ops_document", "register_op_schemas"]
