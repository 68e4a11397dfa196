"""Models quantized already: refused in one line naming the ops, or with requantize only the float
part quantized (the rest left byte for byte as it was)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import onnxq
from onnxq.demo import asset_path
from onnxq.errors import UnsupportedModelError
from onnxq.planning.plan import PREQUANTIZED_REASON


def _calib() -> list[dict[str, np.ndarray]]:
    with np.load(asset_path("digits_calib.npz")) as z:
        return [{"input": z["input"]}]


def _quantized_twice_input() -> onnx.ModelProto:
    return onnxq.quantize_static(str(asset_path("digits_cnn.onnx")), _calib(), "qnnpack", progress=False)


def test_a_qdq_model_is_refused_naming_its_quantization() -> None:
    with pytest.raises(
        UnsupportedModelError, match=r"already quantized \(\d+ DequantizeLinear, \d+ QuantizeLinear"
    ):
        onnxq.prepare(_quantized_twice_input(), "qnnpack")


def test_an_operator_format_model_from_onnxruntime_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(_calib())

        def get_next(self):  # type: ignore[no-untyped-def]
            return next(self.batches, None)

    out = tmp_path / "qop.onnx"
    quantize_static(
        str(asset_path("digits_cnn.onnx")), str(out), Reader(), quant_format=QuantFormat.QOperator
    )
    with pytest.raises(UnsupportedModelError, match="QLinearConv"):
        onnxq.prepare(out, "qnnpack")


def test_requantize_quantizes_only_the_float_part(run_ort) -> None:
    qdq = _quantized_twice_input()
    # float tail after the quantized model's output: a Gemm the user added later
    w = onnx.numpy_helper.from_array(np.eye(10, dtype=np.float32) * 2, "tail_w")
    out = qdq.graph.output[0].name
    tail = onnx.helper.make_node("Gemm", [out, "tail_w"], ["tail_y"], name="tail")
    qdq.graph.initializer.append(w)
    qdq.graph.node.append(tail)
    del qdq.graph.output[:]
    qdq.graph.output.append(onnx.helper.make_tensor_value_info("tail_y", onnx.TensorProto.FLOAT, None))
    prepared = onnxq.prepare(qdq, "qnnpack", requantize=True)
    decisions = {d.name: d for d in prepared.plan.decisions}
    assert decisions["tail"].quantized
    kept = [d for d in prepared.plan.decisions if d.reason == PREQUANTIZED_REASON]
    assert len(kept) >= 13 and all(not d.quantized for d in kept)
    assert any("requantize: the input model's quantization" in n for n in prepared.report.pass_notes)
    prepared.calibrate(_calib(), progress=False)
    twice = prepared.convert()
    before = {n.name for n in qdq.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")}
    after = {n.name for n in twice.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")}
    assert before < after  # the old Q/DQ nodes are all still there; the tail got its own
    x = _calib()[0]["input"][:16]
    np.testing.assert_allclose(run_ort(twice, {"input": x})[0], run_ort(qdq, {"input": x})[0], atol=0.2)
