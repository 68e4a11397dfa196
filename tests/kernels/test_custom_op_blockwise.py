"""ai.onnxq DynamicMatMulNBits (native/src/ort/op_blockwise.c) in an onnxruntime session.

Its bytes must be the numpy reference's (onnxq.kernels.reference.blockwise) on every ISA, for 1-,
2- and 3-D activations, with and without zero points and a bias, with 1 and 2 intra-op threads.
Bad inputs are errors naming the node, never a crash.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from _helpers import F32, assert_same_bits, weight_as_input
from onnx import TensorProto, helper, numpy_helper

from onnxq.kernels.custom_ops import DOMAIN, OPSET
from onnxq.kernels.op_schemas import register_op_schemas
from onnxq.kernels.reference import blockwise as ref
from onnxq.runtime import InferenceSession
from onnxq.weights.weight_only import pack_nbits


def _model(rng: np.random.Generator, k: int, n: int, block: int, zero_points: bool, bias: bool,
           a_shape: list[int | str]):  # type: ignore[no-untyped-def]  # fmt: skip
    """One DynamicMatMulNBits of the graph input ``a`` and random weights; with the reference's inputs."""
    nb = math.ceil(k / block)
    codes = rng.integers(0, 16, (n, k)).astype(np.uint8)
    zp = rng.integers(0, 16, (n, nb)).astype(np.uint8) if zero_points else np.full((n, nb), 8, np.uint8)
    if zero_points:
        zp[0, 0] = 3
    scales = rng.uniform(1e-3, 0.1, (n, nb)).astype(F32)
    b = rng.standard_normal(n).astype(F32) if bias else None
    packed, zpk = pack_nbits(codes, zp, block)
    inits = [numpy_helper.from_array(packed, "B"), numpy_helper.from_array(scales.reshape(-1), "scales")]
    names = ["a", "B", "scales", "zp" if zpk is not None else "", "bias" if b is not None else ""]
    if zpk is not None:
        inits.append(numpy_helper.from_array(zpk, "zp"))
    if b is not None:
        inits.append(numpy_helper.from_array(b, "bias"))
    while names[-1] == "":
        names.pop()
    node = helper.make_node("DynamicMatMulNBits", names, ["y"], domain=DOMAIN, name="mm", K=k, N=n, bits=4,
                            block_size=block)  # fmt: skip
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, a_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * len(a_shape))], inits,
    )  # fmt: skip
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, OPSET)]
    model = helper.make_model(graph, opset_imports=opsets)
    return model, (codes, scales, zp if zero_points else None, block, b)


def _run(model: onnx.ModelProto, a: np.ndarray, threads: int = 1) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return session.run(None, {"a": a})[0]


@pytest.mark.parametrize(("a_shape", "k", "n", "block"), [((1, 256), 256, 96, 32), ((2, 7, 100), 100, 40, 32),
                                                          ((64,), 64, 17, 64), ((3, 1000), 1000, 300, 128)])
@pytest.mark.parametrize("zero_points", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_custom_op_matches_reference_bitexact(isa, rng, a_shape, k, n, block, zero_points, bias) -> None:
    model, (codes, scales, zp, block, b) = _model(rng, k, n, block, zero_points, bias, list(a_shape))
    a = (rng.standard_normal(a_shape) * 3).astype(F32)
    want = ref.blockwise_matmul(a.reshape(-1, k), codes, scales, zp, block, b).reshape(*a_shape[:-1], n)
    for threads in (1, 2):
        assert_same_bits(_run(model, a, threads), want)


def test_schema_checks_and_infers_the_shape(rng) -> None:
    register_op_schemas()
    model, _ = _model(rng, 64, 24, 32, True, True, ["batch", "seq", 64])
    onnx.checker.check_model(model, full_check=True, check_custom_domain=True)
    out = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph.output[0].type.tensor_type
    assert [d.dim_value or d.dim_param for d in out.shape.dim] == ["batch", "seq", 24]


def _replaced(name: str, array: np.ndarray):  # type: ignore[no-untyped-def]
    def edit(model: onnx.ModelProto) -> None:
        tensor = next(t for t in model.graph.initializer if t.name == name)
        tensor.CopyFrom(numpy_helper.from_array(array, name))

    return edit


def _attribute(name: str, value: int):  # type: ignore[no-untyped-def]
    def edit(model: onnx.ModelProto) -> None:
        next(a for a in model.graph.node[0].attribute if a.name == name).i = value

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: weight_as_input(m, "B"), "DynamicMatMulNBits node 'mm': B must be a constant"),
        (_replaced("scales", np.ones(3, F32)), "node 'mm': qb4w_pack: scales has 3 values, expected 48"),
        (_replaced("B", np.ones(5, np.uint8)), "node 'mm': qb4w_pack: b has 5 values, expected 768"),
        (_replaced("bias", np.ones(2, F32)), "node 'mm': bias has 2 values, expected N = 24"),
        (_attribute("bits", 8), "node 'mm': attribute bits is 8, expected 4 to 4"),
        (_attribute("block_size", 48), "node 'mm': qb4w_packed_size: block = 48"),
    ],
)  # fmt: skip
def test_bad_constants_are_errors_naming_the_node(rng, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    model, _ = _model(rng, 64, 24, 32, True, True, [2, 64])
    edit(model)
    with pytest.raises(Exception) as info:  # onnxruntime's own exception types
        _run(model, np.ones((2, 64), F32))
    assert message in str(info.value)


def test_bad_activations_are_errors_naming_the_node(rng) -> None:
    model, _ = _model(rng, 64, 24, 32, False, False, [2, None])
    a = np.ones((2, 64), F32)
    a[1, 7] = np.nan
    with pytest.raises(Exception, match="node 'mm': qd8_quantize_rows: a row 1 contains NaN"):
        _run(model, a)
    with pytest.raises(Exception, match="node 'mm': a must have 64 values along its last axis"):
        _run(model, np.ones((2, 63), F32))
