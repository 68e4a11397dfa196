"""The conversion stages as values: calibration results saved, loaded and merged; the Q/DQ map; the
weight-method registry; weight-only, 4-bit and 16-bit schemes end to end on the bundled digits CNN."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import onnxq
from onnxq.api import convert, prepare
from onnxq.calibration.result import CalibrationResult
from onnxq.demo import asset_path
from onnxq.errors import CalibrationDataError, ConfigError
from onnxq.graph import opset_version
from onnxq.qconfig import PerBlock, PerChannel, QConfig, QSpec
from onnxq.qparams import QParams, quantize_array
from onnxq.weights import QuantizedTensor, WeightRequest, register_weight_method
from onnxq.weights.rtn import weight_qparams

MINMAX = QConfig(
    QSpec(observer="minmax"), QSpec("int8", symmetric=True, granularity=PerChannel(), observer="minmax")
)


def _calib() -> np.ndarray:
    with np.load(asset_path("digits_calib.npz")) as z:
        return z["input"]


def _eval() -> tuple[np.ndarray, np.ndarray]:
    with np.load(asset_path("digits_eval.npz")) as z:
        return z["images"], z["labels"]


def _model() -> str:
    return str(asset_path("digits_cnn.onnx"))


def _predict(model: onnx.ModelProto | str, images: np.ndarray, run_ort) -> np.ndarray:
    return run_ort(model, {"input": images})[0]


def test_saved_loaded_and_merged_calibration_gives_the_same_model_bytes(tmp_path: Path) -> None:
    x = _calib()
    whole = prepare(_model(), MINMAX)
    whole.calibrate([{"input": x}], progress=False)
    expected = whole.convert().SerializeToString()

    halves = [prepare(_model(), MINMAX) for _ in range(2)]
    first = halves[0].calibrate([{"input": x[:40]}], progress=False)
    second = halves[1].calibrate([{"input": x[40:]}], progress=False)
    merged = first.merge(second)
    assert merged.num_samples == 64 and first.num_samples == 40  # merging changes neither part
    path = merged.save(tmp_path / "calib.json")
    loaded = CalibrationResult.load(path)
    fresh = prepare(_model(), MINMAX)
    assert fresh.convert(loaded).SerializeToString() == expected
    assert fresh.convert(merged).SerializeToString() == expected


def test_saved_histogram_calibration_converts_to_the_same_bytes(tmp_path: Path) -> None:
    prepared = prepare(_model(), "x86")
    result = prepared.calibrate([{"input": _calib()}], progress=False)
    expected = prepared.convert().SerializeToString()
    again = prepare(_model(), "x86").convert(CalibrationResult.load(result.save(tmp_path / "c.json")))
    assert again.SerializeToString() == expected


def test_calibration_of_another_model_is_refused_in_one_line(model_from_text) -> None:
    other = model_from_text("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1, 4] x) => (float[1, 4] y) { [sig] s = Add(x, x) y = Relu(s) }
    """)
    prepared = prepare(other, MINMAX)
    calibration = prepare(_model(), MINMAX).calibrate([{"input": _calib()[:4]}], progress=False)
    with pytest.raises(CalibrationDataError, match=r"holds tensor .input., which this model does not have"):
        prepared.convert(calibration)
    with pytest.raises(CalibrationDataError, match="no calibration data"):
        prepared.convert()


def test_qdq_map_names_every_quantized_tensor() -> None:
    prepared = prepare(_model(), MINMAX)
    prepared.calibrate([{"input": _calib()}], progress=False)
    qmodel = prepared.convert()
    conversion = prepared.conversion
    assert conversion is not None and conversion.model is qmodel
    plan = conversion.plan
    planned = {v for node in plan.quantized_nodes() for _, v in plan.inputs.get(node, ())}
    planned |= {v for node in plan.quantized_nodes() for v in plan.outputs.get(node, ())}
    planned |= {w.weight for w in plan.weights.values()} | {w.bias for w in plan.weights.values() if w.bias}
    assert planned and planned == set(conversion.qdq_map)
    nodes = {n.name: n for n in qmodel.graph.node}
    inits = {t.name for t in qmodel.graph.initializer}
    for name, entry in conversion.qdq_map.items():
        dq = nodes[entry.dequantize_node]
        assert dq.op_type == "DequantizeLinear" and list(dq.output) == [entry.dequantized]
        assert dq.input[0] == entry.quantized and dq.input[1] == entry.scale
        if entry.kind == "activation":
            q = nodes[entry.quantize_node]
            assert q.op_type == "QuantizeLinear" and list(q.input[:1]) == [entry.source]
            assert list(q.output) == [entry.quantized]
        else:
            assert entry.quantize_node is None and entry.quantized in inits
        assert entry.kind in ("activation", "constant", "weight", "bias"), name
    graph_output = qmodel.graph.output[0].name
    assert conversion.qdq_map[graph_output].dequantized == graph_output  # the DQ took over its name


@register_weight_method("test_round_down")
def _round_down(request: WeightRequest) -> QuantizedTensor:
    qp = weight_qparams(request.weight, request.spec, request.granularity)
    floored = np.floor(request.weight / _per_element(qp, request.weight.shape))
    return QuantizedTensor(quantize_array(floored, 1.0, 0, None, request.spec.dtype), qp)


def _per_element(qp: QParams, shape: tuple[int, ...]) -> np.ndarray:
    shape_1 = [1] * len(shape)
    if qp.axis is not None:
        shape_1[qp.axis] = -1
    return qp.scale.reshape(shape_1)


def test_registered_weight_method_changes_the_stored_weights() -> None:
    prepared = prepare(_model(), MINMAX)
    prepared.calibrate([{"input": _calib()}], progress=False)
    nearest = {t.name: numpy_helper.to_array(t) for t in prepared.convert().graph.initializer}
    down = {
        t.name: numpy_helper.to_array(t)
        for t in prepared.convert(weight_method="test_round_down").graph.initializer
    }
    assert prepared.conversion is not None and prepared.conversion.weights.method == "test_round_down"
    stored = [e.quantized for e in prepared.conversion.qdq_map.values() if e.kind == "weight"]
    assert len(stored) == 5
    w_name = next(e.tensor for e in prepared.conversion.qdq_map.values() if e.kind == "weight")
    weight = prepared.conversion.weights.nodes[next(iter(prepared.conversion.weights.nodes))].weight
    for name in stored:
        assert nearest[name].dtype == down[name].dtype == np.int8
        assert np.all(down[name] <= nearest[name]) and np.any(down[name] < nearest[name])
    assert weight.values.dtype == np.int8 and w_name in prepared.model.graph.initializers
    with pytest.raises(ConfigError, match=r"unknown weight method 'nope' .*rtn"):
        prepared.convert(weight_method="nope")
    with pytest.raises(ValueError, match="registered twice"):
        register_weight_method("rtn")(_round_down)


@pytest.mark.parametrize("block_size", [16, 32])
def test_weight_only_int4_blocks_run_on_onnxruntime_close_to_fp32(
    block_size: int, run_ort, op_counts
) -> None:
    qconfig = QConfig(None, QSpec("int4", symmetric=True, granularity=PerBlock(block_size=block_size)))
    prepared = prepare(_model(), qconfig)
    assert opset_version(prepared.model) == 21 and prepared.plan.observed_values() == {}
    qmodel = prepared.convert()  # weight-only: no calibration needed
    ops = op_counts(qmodel)
    assert "QuantizeLinear" not in ops and ops["DequantizeLinear"] == 5
    for node in (n for n in qmodel.graph.node if n.op_type == "DequantizeLinear"):
        attrs = {a.name: a.i for a in node.attribute}
        weight = next(t for t in qmodel.graph.initializer if t.name == node.input[0])
        assert weight.data_type == onnx.TensorProto.INT4 and attrs["block_size"] == block_size
    images, labels = _eval()
    fp32 = _predict(_model(), images, run_ort).argmax(1)
    int4 = _predict(qmodel, images, run_ort).argmax(1)
    assert np.mean(int4 == fp32) >= 0.95 and np.mean(int4 == labels) >= 0.93
    size = len(qmodel.SerializeToString())
    assert size < 0.25 * Path(_model()).stat().st_size  # 4-bit weights two per byte, a scale per block


def test_16_bit_scheme_runs_on_onnxruntime_and_is_far_closer_than_8_bit(run_ort) -> None:
    images, _ = _eval()
    fp32 = _predict(_model(), images, run_ort).astype(np.float64)
    sqnr = {}
    for dtype in ("int8", "int16"):
        qc = QConfig(QSpec(dtype, symmetric=True), QSpec(dtype, symmetric=True, granularity=PerChannel()))
        q = onnxq.quantize_static(_model(), [{"input": _calib()}], qc, progress=False)
        assert opset_version(onnxq.load_model(q)) == (21 if dtype == "int16" else 17)
        noise = np.sum((_predict(q, images, run_ort) - fp32) ** 2)
        sqnr[dtype] = 10 * np.log10(np.sum(fp32**2) / noise)
    # clipping at the ranges the 64 calibration samples saw bounds both; rounding no longer dominates
    assert sqnr["int8"] > 25 and sqnr["int16"] > sqnr["int8"] + 12


def test_convert_function_returns_every_stage() -> None:
    prepared = prepare(_model(), MINMAX)
    calibration = prepared.calibrate([{"input": _calib()}], progress=False)
    conversion = convert(prepared.model, prepared.plan, calibration)
    assert conversion.qparams.unreached == frozenset()
    assert set(conversion.weights.nodes) == set(prepared.plan.weights)
    assert len(conversion.report.quantized) == len(conversion.report.nodes)
    assert conversion.model.SerializeToString() == prepared.convert().SerializeToString()


def test_a_weight_method_that_needs_data_is_refused_in_static_mode() -> None:
    """gptq needs the layers' input statistics, which only weight-only mode gathers: static
    conversion says so instead of rounding to nearest behind the user's back."""
    prepared = onnxq.prepare(asset_path("digits_cnn.onnx"))
    prepared.calibrate([{"input": np.load(asset_path("digits_calib.npz"))["input"][:4]}], progress=False)
    with pytest.raises(ConfigError, match="'gptq' needs the layers' input statistics"):
        prepared.convert(weight_method="gptq")
