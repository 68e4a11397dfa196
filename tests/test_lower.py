"""onnx's own node test cases for the quantization ops, lowered and run through onnxq.runtime.

``onnx.backend.test.case.node`` generates the cases behind onnx's node test data (QLinearConv,
QLinearMatMul, MatMulInteger, ConvInteger, DynamicQuantizeLinear, QuantizeLinear,
DequantizeLinear). Each model is lowered with every input but the first baked in as an
initializer (so its weights are constants, as in a real model), run with
:func:`onnxq.runtime.InferenceSession`, and must give the case's expected outputs: integers
exactly, floats within the case's tolerances. What is lowered runs on onnxq's ops; what is not (the
notes say why) stays on onnxruntime's.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import onnx
from onnx import numpy_helper

from onnxq.lower import lower
from onnxq.runtime import InferenceSession

OPS = (
    "QLinearConv",
    "QLinearMatMul",
    "MatMulInteger",
    "ConvInteger",
    "DynamicQuantizeLinear",
    "QuantizeLinear",
    "DequantizeLinear",
)
#: Types onnxruntime 1.18+ runs for these ops (float8 and 4-bit cases are other runtimes' business).
RUNNABLE = {
    onnx.TensorProto.FLOAT,
    onnx.TensorProto.UINT8,
    onnx.TensorProto.INT8,
    onnx.TensorProto.INT32,
    onnx.TensorProto.INT16,
    onnx.TensorProto.UINT16,
}


@functools.cache
def _cases() -> list[tuple[str, onnx.ModelProto, list[np.ndarray], list[np.ndarray], float, float]]:
    from onnx.backend.test.case.node import collect_testcases

    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        every = collect_testcases(None)  # one call: the module collects on its first import only
    for case in every:
        if case.model is None or {n.op_type for n in case.model.graph.node} - set(OPS):
            continue
        for inputs, outputs in case.data_sets or []:
            out.append((case.name, case.model, list(inputs), list(outputs), case.rtol, case.atol))
    return out


def _runnable(model: onnx.ModelProto) -> bool:
    types = [v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]]
    return all(t in RUNNABLE for t in types)


def _same(got: list[np.ndarray], want: list[np.ndarray], rtol: float, atol: float, name: str) -> None:
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        if np.issubdtype(w.dtype, np.integer):
            np.testing.assert_array_equal(g, w, err_msg=f"{name} output {k}")
        else:
            np.testing.assert_allclose(
                g, w, rtol=max(rtol, 1e-6), atol=max(atol, 1e-6), err_msg=f"{name} output {k}"
            )


def _stock_runs(
    model: onnx.ModelProto, inputs: list[np.ndarray], outputs: list[np.ndarray], rtol: float, atol: float
) -> bool:
    """Whether stock onnxruntime runs the case and gives its expected outputs."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        _same(session.run(None, {model.graph.input[0].name: inputs[0]}), outputs, rtol, atol, "stock")
    except Exception:  # onnxruntime's own exception types, or a mismatch
        return False
    return True


def _baked(model: onnx.ModelProto, inputs: list[np.ndarray]) -> onnx.ModelProto:
    """``model`` with inputs 1.. as initializers (constants), at an opset onnxruntime has kernels of."""
    baked = onnx.ModelProto()
    baked.CopyFrom(model)
    names = [i.name for i in model.graph.input]
    for name, value in zip(names[1:], inputs[1:], strict=True):
        baked.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
    del baked.graph.input[1:]
    if baked.opset_import[0].version > 21:  # onnx writes its newest opset; onnxruntime has Q/DQ up to 21
        baked.opset_import[0].version = 21
    return baked


def test_onnx_node_cases_of_the_quantization_ops_lowered_give_their_expected_outputs() -> None:
    cases = [c for c in _cases() if _runnable(c[1])]
    assert {
        "test_qlinearconv",
        "test_qlinearmatmul_2D_uint8_float32",
        "test_matmulinteger",
        "test_convinteger_with_padding",
        "test_dynamicquantizelinear",
        "test_quantizelinear",
        "test_dequantizelinear",
    } <= {c[0] for c in cases}
    lowered_names = []
    compared = set()
    for name, model, inputs, outputs, rtol, atol in cases:
        if not _stock_runs(_baked(model, inputs), inputs, outputs, rtol, atol):
            continue  # onnxruntime itself does not run it (per-channel ConvInteger zero points)
        compared.add(name)
        result = lower(_baked(model, inputs))
        if result.lowered:
            lowered_names.append(name)
        session = InferenceSession(result.model.SerializeToString(), providers=["CPUExecutionProvider"])
        _same(session.run(None, {model.graph.input[0].name: inputs[0]}), outputs, rtol, atol, name)
    assert len(compared) >= 15
    # onnx's QLinearConv case has uint8 weights with a zero point: onnxq's conv takes int8
    # symmetric weights, so it stays on onnxruntime's kernel and still gives the expected bytes.
    assert "test_qlinearconv" not in lowered_names


def test_a_qlinearconv_with_int8_symmetric_weights_from_onnxs_case_is_lowered_and_exact() -> None:
    """onnx's QLinearConv case with its weights made int8 symmetric (w - w_zp): the lowered model
    gives what onnx's reference evaluator computes."""
    from onnx.reference import ReferenceEvaluator

    name, model, inputs, _, _, _ = next(c for c in _cases() if c[0] == "test_qlinearconv")
    x, xs, xz, w, ws, wz, ys, yz = inputs[:8]
    w8 = (w.astype(np.int32) - wz.astype(np.int32)).clip(-127, 127).astype(np.int8)
    fixed = [x, xs, xz, w8, ws, np.zeros_like(w8, shape=np.shape(wz)), ys, yz, *inputs[8:]]
    for i, v in enumerate(model.graph.input):
        if i in (3, 5):
            v.type.tensor_type.elem_type = onnx.TensorProto.INT8
    want = ReferenceEvaluator(model).run(
        None, dict(zip([v.name for v in model.graph.input], fixed, strict=True))
    )
    result = lower(_baked(model, fixed))
    assert result.lowered == 1, result.notes
    got = InferenceSession(result.model.SerializeToString()).run(None, {model.graph.input[0].name: x})
    np.testing.assert_array_equal(got[0], want[0], err_msg=name)
