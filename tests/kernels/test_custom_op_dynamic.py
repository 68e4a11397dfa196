"""ai.onnxq DynamicMatMul (native/src/ort/op_dynamic.c) in an onnxruntime session.

Its bytes must be the numpy reference's (onnxq.kernels.reference.dynamic.dynamic_matmul) and the
Python wrapper's on every ISA, for 1-, 2- and 3-D activations, per-tensor and per-column weight
scales, with and without a bias, and the same with 1 and 2 intra-op threads (the rows are split
in blocks). Bad inputs (a weight that is not a constant, a zero point, NaN activations, the wrong
K) are errors naming the node, never a crash.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from _helpers import weight_as_input
from onnx import TensorProto, helper, numpy_helper

from onnxq.kernels.custom_ops import DOMAIN, OPSET
from onnxq.kernels.dynamic import dynamic_matmul, pack_dynamic_weights
from onnxq.kernels.op_schemas import register_op_schemas
from onnxq.kernels.reference.dynamic import dynamic_matmul as reference_dynamic_matmul
from onnxq.runtime import InferenceSession

F32 = np.float32


def _model(w: np.ndarray, w_scale: np.ndarray, bias: np.ndarray | None, a_shape: list[int | str],
           w_zero_point: np.ndarray | None = None) -> onnx.ModelProto:  # fmt: skip
    """One DynamicMatMul of the graph input ``a`` and the constant ``w [K, N]``."""
    zp = np.zeros(w_scale.shape, np.int8) if w_zero_point is None else w_zero_point
    inits = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(w_scale, "ws"),
        numpy_helper.from_array(zp, "wz"),
    ]
    if bias is not None:
        inits.append(numpy_helper.from_array(bias, "b"))
    node = helper.make_node(
        "DynamicMatMul", ["a", "w", "ws", "wz", *(["b"] if bias is not None else [])], ["y"],
        domain=DOMAIN, name="mm",
    )  # fmt: skip
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, a_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * len(a_shape))],
        inits,
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, OPSET)]
    return helper.make_model(graph, opset_imports=opsets)


def _run(model: onnx.ModelProto, a: np.ndarray, threads: int = 1) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return session.run(None, {"a": a})[0]


def _case(rng: np.random.Generator, k: int, n: int, per_column: bool, bias: bool):  # type: ignore[no-untyped-def]
    w = rng.integers(-127, 128, (k, n), dtype=np.int8)
    ws = (rng.random(n if per_column else 1) * 0.01 + 0.001).astype(F32)
    b = (rng.standard_normal(n) * 2).astype(F32) if bias else None
    return w, ws if per_column else ws.reshape(()), b


@pytest.mark.parametrize(
    ("a_shape", "k", "n"),
    [
        ((70, 96), 96, 40),
        ((2, 37, 64), 64, 72),
        ((24,), 24, 5),
        ((1, 300), 300, 130),
        ((3, 1, 17), 17, 1),
        ((2, 150, 40), 40, 270),  # two bands of rows x two ranges of columns
    ],
)
@pytest.mark.parametrize("per_column", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_dynamic_matmul_is_the_reference_bit_for_bit_on_every_isa_and_thread_count(
    isa: str, rng: np.random.Generator, a_shape: tuple[int, ...], k: int, n: int, per_column: bool, bias: bool
) -> None:
    w, ws, b = _case(rng, k, n, per_column, bias)
    a = (rng.standard_normal(a_shape) * 3 + 0.5).astype(F32)
    a2 = a.reshape(-1, k)
    want = reference_dynamic_matmul(a2, w.T, np.broadcast_to(ws, (n,)), b).reshape(*a_shape[:-1], n)
    wrapped = dynamic_matmul(a2, pack_dynamic_weights(np.ascontiguousarray(w.T), ws), bias=b)
    model = _model(w, ws, b, list(a_shape))
    one, two = _run(model, a, threads=1), _run(model, a, threads=2)
    assert one.shape == want.shape and one.dtype == np.float32
    np.testing.assert_array_equal(one.view(np.uint32), want.view(np.uint32), err_msg=isa)
    np.testing.assert_array_equal(two.view(np.uint32), one.view(np.uint32), err_msg=f"{isa}, 2 threads")
    np.testing.assert_array_equal(wrapped.reshape(want.shape).view(np.uint32), want.view(np.uint32))


def test_dynamic_matmul_keeps_symbolic_dims_and_passes_the_checker() -> None:
    register_op_schemas()
    model = _model(np.ones((8, 3), np.int8), np.full(3, 0.1, F32), np.zeros(3, F32), ["batch", "seq", 8])
    onnx.checker.check_model(model, full_check=True, check_custom_domain=True)
    out = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph.output[0].type.tensor_type
    assert out.elem_type == TensorProto.FLOAT
    assert [d.dim_value or d.dim_param for d in out.shape.dim] == ["batch", "seq", 3]


def test_all_zero_activations_give_the_bias() -> None:
    b = np.arange(4, dtype=F32)
    out = _run(_model(np.ones((5, 4), np.int8), np.full(4, 0.5, F32), b, [2, 5]), np.zeros((2, 5), F32))
    np.testing.assert_array_equal(out, np.stack([b, b]))


def _replaced(name: str, array: np.ndarray):  # type: ignore[no-untyped-def]
    """An edit of the model: the initializer ``name`` holds ``array`` instead."""

    def edit(model: onnx.ModelProto) -> None:
        tensor = next(t for t in model.graph.initializer if t.name == name)
        tensor.CopyFrom(numpy_helper.from_array(array, name))

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (weight_as_input, "onnxq DynamicMatMul node 'mm': w must be a constant (an initializer)"),
        (_replaced("wz", np.array([0, 2, 0], np.int8)),
         "node 'mm': w_zero_point[1] is 2; onnxq's DynamicMatMul takes symmetric weights"),
        (_replaced("ws", np.array([0.1, 0.0, 0.1], F32)), "node 'mm': w_scale is 0, expected a finite"),
        (_replaced("b", np.zeros(2, F32)), "node 'mm': B has 2 values, expected 3"),
        (_replaced("w", np.ones(12, np.int8)), "node 'mm': w is not a non-empty [K, N] matrix"),
    ],
)  # fmt: skip
def test_bad_constants_are_errors_naming_the_node(edit, message: str) -> None:  # type: ignore[no-untyped-def]
    model = _model(np.ones((4, 3), np.int8), np.full(3, 0.1, F32), np.zeros(3, F32), [2, 4])
    edit(model)
    with pytest.raises(Exception) as info:  # onnxruntime's own exception types
        _run(model, np.ones((2, 4), F32))
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("a", "message"),
    [
        (np.array([[1, np.nan, 0, 0]], F32), "node 'mm': dynamic_quantize: a row 0 contains NaN or infinity"),
        (np.array([[1, 2, 3, np.inf]], F32), "contains NaN or infinity"),
        (np.ones((2, 5), F32), "node 'mm': a must have 4 values along its last axis"),
    ],
)
def test_bad_activations_are_errors_at_run_time_naming_the_node(a: np.ndarray, message: str) -> None:
    model = _model(np.ones((4, 3), np.int8), np.full(3, 0.1, F32), None, [None, None])
    with pytest.raises(Exception) as info:
        _run(model, a)
    assert message in str(info.value)


def test_empty_activations_give_an_empty_output() -> None:
    model = _model(np.ones((4, 3), np.int8), np.full(3, 0.1, F32), None, [None, 4])
    assert _run(model, np.zeros((0, 4), F32)).shape == (0, 3)
