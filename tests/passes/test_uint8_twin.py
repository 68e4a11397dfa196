from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from onnxq.demo import asset_path
from onnxq.errors import UnsupportedModelError
from onnxq.io import load_model, to_proto
from onnxq.lower import lower
from onnxq.passes.uint8_twin import Uint8Twin, exact_on_onnxruntime, shift_to_uint8, uint8_twin
from onnxq.runtime import InferenceSession, make_session, ort_u8s8_saturates


def _twin(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, int, tuple[str, ...]]:
    result = Uint8Twin()(load_model(proto))
    return to_proto(result.model), result.count, result.notes


def _int8_tensors(model: onnx.ModelProto) -> list[str]:
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    typed = [*g.value_info, *g.input, *g.output]
    return [v.name for v in typed if v.type.tensor_type.elem_type == TensorProto.INT8] + [
        t.name for t in g.initializer if t.data_type == TensorProto.INT8
    ]


def test_shift_keeps_every_difference_and_maps_int8_onto_uint8() -> None:
    q = np.arange(-128, 128, dtype=np.int8)
    u = shift_to_uint8(q)
    assert u.dtype == np.uint8 and u[0] == 0 and u[-1] == 255
    assert np.array_equal(u.astype(np.int32) - 128, q.astype(np.int32))
    with pytest.raises(TypeError, match="int8"):
        shift_to_uint8(u)


QDQ_INT8 = """
    <ir_version: 9, opset_import: ["" : 19]>
    g (float[2, 6] x) => (float[2, 3] y) <int8[6, 3] w = {WVALUES}, float ws = {0.02},
        float xs = {0.05}, int8 xz = {-3}, float ys = {0.1}, int8 yz = {7}, int64[2] s = {2, 6}> {
        xq = QuantizeLinear(x, xs, xz)
        xr = Reshape(xq, s)
        xf = DequantizeLinear(xr, xs, xz)
        wf = DequantizeLinear(w, ws)
        m = MatMul(xf, wf)
        mq = QuantizeLinear(m, ys, yz)
        y = DequantizeLinear(mq, ys, yz)
    }
"""


def _qdq_int8_model(model_from_text) -> onnx.ModelProto:  # type: ignore[no-untyped-def]
    w = ", ".join(str(v) for v in np.linspace(-127, 127, 18).astype(np.int8))
    return model_from_text(QDQ_INT8.replace("WVALUES", w))


def test_twin_of_an_int8_model_holds_no_int8_and_computes_the_same_floats(model_from_text) -> None:  # type: ignore[no-untyped-def]
    proto = _qdq_int8_model(model_from_text)
    twin, count, notes = _twin(proto)
    assert count >= 6 and notes == ()  # w, xz, yz and the three activations
    assert _int8_tensors(twin) == [] and _int8_tensors(proto)
    onnx.checker.check_model(twin)
    x = np.random.default_rng(0).uniform(-8, 8, (2, 6)).astype(np.float32)  # saturates both ends
    want = ReferenceEvaluator(proto).run(None, {"x": x})[0]
    got = ReferenceEvaluator(twin).run(None, {"x": x})[0]
    assert np.array_equal(got, want)


def test_twin_refuses_an_int8_graph_output_and_changes_nothing(model_from_text) -> None:  # type: ignore[no-untyped-def]
    proto = model_from_text("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[4] x) => (int8[4] q) <float s = {0.1}, int8 z = {0}> { q = QuantizeLinear(x, s, z) }
    """)
    twin, count, notes = _twin(proto)
    assert count == 0 and notes == ("uint8_twin: left unchanged: int8 graph input/output 'q'",)
    assert twin.graph.initializer[1].data_type == TensorProto.INT8


def test_twin_refuses_an_op_that_does_not_commute_with_the_shift(model_from_text) -> None:  # type: ignore[no-untyped-def]
    proto = model_from_text("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[4] x) => (float[4] y) <float s = {0.1}, int8 z = {0}> {
            q = QuantizeLinear(x, s, z)
            c = Cast <to = 6> (q)
            y = Cast <to = 1> (c)
        }
    """)
    _, count, notes = _twin(proto)
    assert count == 0 and "node" in notes[0] and "(Cast) reads or writes int8" in notes[0]


def _saturating_matmul() -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    a = np.full((3, 8), 255, np.uint8)
    b = np.full((8, 4), 127, np.int8)
    b[:, 1] = -127
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "g",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [3, 8])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [3, 4])],
        [numpy_helper.from_array(b, "b")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return model, a, a.astype(np.int64) @ b.astype(np.int64)


def test_exact_on_onnxruntime_gives_the_exact_integers_on_this_cpu() -> None:
    model, a, want = _saturating_matmul()
    exact = exact_on_onnxruntime(model)
    got = ort.InferenceSession(exact.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"a": a}
    )
    assert np.array_equal(got[0], want)
    raw = make_session(model).run(None, {"a": a})[0]
    assert ort_u8s8_saturates() == (not np.array_equal(raw, want))
    assert (exact is model) == (not ort_u8s8_saturates())


def test_onnxqs_own_ops_keep_their_int8_weights(tmp_path: Path) -> None:
    from onnxq.api import prepare
    from onnxq.calibration.sources import load_calibration_data

    prepared = prepare(asset_path("digits_cnn.onnx"))
    prepared.calibrate(load_calibration_data(asset_path("digits_calib.npz")), progress=False)
    lowered = lower(prepared.convert()).model
    twin, _, notes = _twin(lowered)
    assert notes == ()
    ours = [t for t in twin.graph.initializer if t.data_type == TensorProto.INT8]
    assert ours and len(ours) == len(
        [t for t in lowered.graph.initializer if t.data_type == TensorProto.INT8]
    )
    with np.load(asset_path("digits_eval.npz")) as z:
        images = z["images"][:32]
    want = InferenceSession(lowered.SerializeToString()).run(None, {"input": images})[0]
    assert np.array_equal(InferenceSession(twin.SerializeToString()).run(None, {"input": images})[0], want)


def test_uint8_twin_of_a_model_it_cannot_take_is_a_one_line_error(model_from_text) -> None:  # type: ignore[no-untyped-def]
    proto = model_from_text("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[4] x) => (int8[4] q) <float s = {0.1}, int8 z = {0}> { q = QuantizeLinear(x, s, z) }
    """)
    with pytest.raises(UnsupportedModelError, match=r"^no uint8 twin: int8 graph input/output 'q'$"):
        uint8_twin(proto)
    assert exact_on_onnxruntime(proto) is proto
