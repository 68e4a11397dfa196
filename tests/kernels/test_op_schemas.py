from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxq.kernels.custom_ops import DOMAIN, OPSET
from onnxq.kernels.op_schemas import OPS, ops_document, register_op_schemas
from onnxq.runtime import make_session

ROOT = Path(__file__).resolve().parents[2]


def test_the_schema_file_is_the_table() -> None:
    doc = json.loads((ROOT / "schemas" / "ai.onnxq.opset1.json").read_text(encoding="utf-8"))
    doc.pop("$comment")
    assert doc == ops_document()


def test_every_op_has_a_kernel_and_a_section_in_the_docs() -> None:
    c_ops = set()
    for source in (ROOT / "native" / "src" / "ort").glob("op_*.c"):
        c_ops |= set(re.findall(r'\.name = "(\w+)"', source.read_text(encoding="utf-8")))
    docs = (ROOT / "docs" / "custom_ops.md").read_text(encoding="utf-8")
    assert c_ops == set(OPS)
    assert {op for op in OPS if re.search(rf"^### {op}\(", docs, re.M)} == set(OPS)


def _infer(
    node: onnx.NodeProto, inputs: list[onnx.ValueInfoProto], inits: list[TensorProto], rank: int = 4
) -> list[int | str]:
    register_op_schemas()
    elem = TensorProto.FLOAT if OPS[node.op_type].outputs[0][1] == "tensor(float)" else TensorProto.UINT8
    graph = helper.make_graph(
        [node], "g", inputs, [helper.make_tensor_value_info("y", elem, [None] * rank)], inits
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, OPSET)]
    )
    onnx.checker.check_model(model, check_custom_domain=True)
    out = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph.output[0].type.tensor_type
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in out.shape.dim]


def _onnx_nchw(op: str, x_shape: list[int], w_shape: list[int] | None, **attrs: object) -> list[int]:
    """The output shape of the standard NCHW op as onnxruntime computes it (for MaxPool with
    ceil_mode, onnx's own shape inference lets a last window start in the trailing padding)."""
    inits = [] if w_shape is None else [numpy_helper.from_array(np.zeros(w_shape, np.float32), "w")]
    node = helper.make_node(op, ["x"] + ([] if w_shape is None else ["w"]), ["y"], **attrs)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = helper.make_model(
        helper.make_graph([node], "g", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)]
    )
    (out,) = make_session(model).run(None, {"x": np.zeros(x_shape, np.float32)})
    return list(out.shape)


def _qparams(*names: str) -> list[TensorProto]:
    out = []
    for n in names:
        out += [
            numpy_helper.from_array(np.array(0.1, np.float32), f"{n}_scale"),
            numpy_helper.from_array(np.array(128, np.uint8), f"{n}_zero_point"),
        ]
    return out


GEOMETRIES = list(
    itertools.product(
        [(7, 9), (8, 8)], [(3, 3), (1, 1), (3, 2)], [1, 2], [(0, 0, 0, 0), (1, 0, 2, 1)], [1, 2]
    )
)


@pytest.mark.parametrize(("hw", "k", "stride", "pads", "dilation"), GEOMETRIES)
def test_conv_shape_is_onnxruntimes_conv_shape_in_nhwc(hw, k, stride, pads, dilation) -> None:  # type: ignore[no-untyped-def]
    geometry = {"strides": [stride] * 2, "pads": list(pads), "dilations": [dilation] * 2}
    want = _onnx_nchw("Conv", [2, 4, *hw], [6, 4, *k], **geometry)
    w = numpy_helper.from_array(np.zeros((6, 4, *k), np.int8), "w")
    wq = [
        w,
        numpy_helper.from_array(np.ones(6, np.float32), "w_scale"),
        numpy_helper.from_array(np.zeros(6, np.int8), "w_zero_point"),
    ]
    names = ["x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point", "y_scale", "y_zero_point"]
    node = helper.make_node("QLinearConv", names, ["y"], domain=DOMAIN, group=1, qmin=0, qmax=255, **geometry)
    x = helper.make_tensor_value_info("x", TensorProto.UINT8, [2, hw[0], hw[1], 4])
    got = _infer(node, [x], [*_qparams("x", "y"), *wq])
    assert got == [want[0], want[2], want[3], want[1]]


# onnxruntime's pools want every pad smaller than the kernel
POOL_GEOMETRIES = [
    g for g in GEOMETRIES if max(g[3][0], g[3][2]) < g[1][0] and max(g[3][1], g[3][3]) < g[1][1]
]


@pytest.mark.parametrize(("hw", "k", "stride", "pads", "dilation"), POOL_GEOMETRIES)
@pytest.mark.parametrize("ceil_mode", [0, 1])
def test_max_pool_shape_is_onnxruntimes_in_nhwc(hw, k, stride, pads, dilation, ceil_mode) -> None:  # type: ignore[no-untyped-def]
    geometry = {
        "kernel_shape": list(k),
        "strides": [stride] * 2,
        "pads": list(pads),
        "dilations": [dilation] * 2,
    }
    want = _onnx_nchw("MaxPool", [2, 4, *hw], None, ceil_mode=ceil_mode, **geometry)
    node = helper.make_node("MaxPool", ["x"], ["y"], domain=DOMAIN, ceil_mode=ceil_mode, **geometry)
    got = _infer(node, [helper.make_tensor_value_info("x", TensorProto.UINT8, [2, hw[0], hw[1], 4])], [])
    assert got == [want[0], want[2], want[3], want[1]]


@pytest.mark.parametrize(("layout", "want"), [("same", ["n", 3, 5, 7]), ("nchw_to_nhwc", ["n", 5, 7, 3])])
def test_quantize_shape_follows_its_layout_and_keeps_symbolic_dims(
    layout: str, want: list[int | str]
) -> None:
    node = helper.make_node("Quantize", ["x", "s", "z"], ["y"], domain=DOMAIN, layout=layout)
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(3, np.uint8), "z"),
    ]
    assert (
        _infer(node, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 5, 7])], inits) == want
    )


@pytest.mark.parametrize(("trans_b", "w_shape"), [(1, (10, 32)), (0, (32, 10))])
def test_gemm_shape_takes_n_from_the_weights_either_way(trans_b: int, w_shape: tuple[int, int]) -> None:
    wq = [
        numpy_helper.from_array(np.zeros(w_shape, np.int8), "w"),
        numpy_helper.from_array(np.ones(10, np.float32), "w_scale"),
        numpy_helper.from_array(np.zeros(10, np.int8), "w_zero_point"),
    ]
    names = ["a", "a_scale", "a_zero_point", "w", "w_scale", "w_zero_point", "y_scale", "y_zero_point"]
    node = helper.make_node("QGemm", names, ["y"], domain=DOMAIN, transB=trans_b, qmin=0, qmax=255)
    a = helper.make_tensor_value_info("a", TensorProto.UINT8, ["batch", 32])
    assert _infer(node, [a], [*_qparams("a", "y"), *wq], rank=2) == ["batch", 10]


def test_a_wrong_attribute_type_fails_the_checker() -> None:
    node = helper.make_node("Dequantize", ["x", "s", "z"], ["y"], domain=DOMAIN, layout=3)
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(3, np.uint8), "z"),
    ]
    with pytest.raises(onnx.checker.ValidationError, match="layout"):
        _infer(node, [helper.make_tensor_value_info("x", TensorProto.UINT8, [2, 3])], inits, rank=2)


@pytest.mark.parametrize(
    ("shapes", "axis", "want"),
    [
        ([["n", 5, 7, 1], ["n", 5, 7, 2], ["n", 5, 7, 6]], 3, ["n", 5, 7, 9]),  # NHWC channels
        ([["n", 5, 7, 1], ["n", 5, 7, 2]], -1, ["n", 5, 7, 3]),
        ([[2, 4, 3, 3], [5, 4, 3, 3]], 0, [7, 4, 3, 3]),
        ([["n", 4, 3, 3], [5, 4, 3, 3]], 0, [None, 4, 3, 3]),  # a sum with an unknown: unknown
    ],
)
def test_concat_shape_sums_the_axis_and_keeps_the_other_extents(
    shapes: list[list[int | str]], axis: int, want: list[int | str | None]
) -> None:
    names = [f"x{i}" for i in range(len(shapes))]
    node = helper.make_node(
        "QLinearConcat", ["y_scale", "y_zero_point", "x_scales", "x_zero_points", *names], ["y"],
        domain=DOMAIN, axis=axis,
    )  # fmt: skip
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "y_scale"),
        numpy_helper.from_array(np.array(128, np.uint8), "y_zero_point"),
        numpy_helper.from_array(np.ones(len(shapes), np.float32), "x_scales"),
        numpy_helper.from_array(np.zeros(len(shapes), np.uint8), "x_zero_points"),
    ]
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.UINT8, s) for n, s in zip(names, shapes, strict=True)
    ]
    got = _infer(node, inputs, inits)
    assert [None if isinstance(d, str) and d != "n" else d for d in got] == want  # onnx names unknowns
