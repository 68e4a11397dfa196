"""onnxq.quantize_dynamic / convert_dynamic: options, refusals, mixed models, the report."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxq
from onnxq.demo import asset_path
from onnxq.errors import ConfigError, UnsupportedModelError
from onnxq.passes.uint8_twin import uint8_twin
from onnxq.qconfig import DYNAMIC_PRESETS, QConfig, QConfigMapping, get_default_qconfig


def _digits() -> onnx.ModelProto:
    """The bundled digits CNN: Conv layers and a Gemm head."""
    return onnx.load(str(asset_path("digits_cnn.onnx")))


def _images(n: int = 16) -> np.ndarray:
    with np.load(asset_path("digits_calib.npz")) as z:
        return z["input"][:n]


def test_dynamic_presets_are_pytorchs_dynamic_qconfigs() -> None:
    assert DYNAMIC_PRESETS == ("dynamic", "per_channel_dynamic")
    per_tensor, per_channel = (get_default_qconfig(name) for name in DYNAMIC_PRESETS)
    for qc in (per_tensor, per_channel):
        assert qc.activation is not None and qc.activation.dynamic and qc.activation.dtype == "uint8"
        assert qc.weight.dtype == "int8" and qc.weight.symmetric
    assert not per_tensor.weight.per_channel and per_channel.weight.per_channel
    assert QConfig.from_dict("per_channel_dynamic") == per_channel


@pytest.mark.parametrize("fmt", ["qdq", "onnxruntime", "onnxq"])
def test_mixed_model_stores_conv_weights_int8_and_quantizes_the_gemm(fmt: str, run_ort, tmp_path) -> None:
    conversion = onnxq.convert_dynamic(_digits(), format=fmt)
    kinds = {n.op_type: n.kind for n in conversion.report.nodes if n.quantized}
    assert kinds == {"Conv": "weight_only", "Gemm": "dynamic_matmul"}
    assert not conversion.model.graph.value_info  # onnxruntime infers shapes (see convert_dynamic)
    conv_weights = [n.input[1] for n in conversion.model.graph.node if n.op_type == "Conv"]
    producers = {o: n for n in conversion.model.graph.node for o in n.output}
    assert all(producers[w].op_type == "DequantizeLinear" for w in conv_weights)
    x = _images()
    (fp32,) = run_ort(_digits(), {"input": x})
    (got,) = run_ort(conversion.model, {"input": x})
    assert np.mean(fp32.argmax(1) == got.argmax(1)) == 1.0
    assert np.abs(got - fp32).max() < 0.05 * np.abs(fp32).max()

    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    onnx.save(_digits(), tmp_path / "m.onnx")
    ort_quantize_dynamic(str(tmp_path / "m.onnx"), str(tmp_path / "ort.onnx"))
    ours, theirs = conversion.model.ByteSize(), (tmp_path / "ort.onnx").stat().st_size
    assert ours <= 1.05 * theirs, (ours, theirs)  # per-channel scales cost a few hundred bytes


def test_uint8_weights_are_the_int8_models_uint8_twin() -> None:
    int8 = onnxq.quantize_dynamic(_digits())
    uint8 = onnxq.quantize_dynamic(_digits(), weight_dtype="uint8")
    twin = uint8_twin(int8)
    del twin.graph.value_info[:]  # the twin's shape inference adds them; the dynamic model has none
    assert uint8.SerializeToString() == twin.SerializeToString()
    assert not [t.name for t in uint8.graph.initializer if t.data_type == TensorProto.INT8]


@pytest.mark.parametrize(
    ("options", "gemm_max", "conv_max"),
    [({}, 63, 127), ({"reduce_range": False}, 127, 127),
     ({"qconfig_mapping": "per_channel_dynamic"}, 127, 127),
     ({"qconfig_mapping": "per_channel_dynamic", "reduce_range": True}, 63, 127)],
)  # fmt: skip
def test_reduce_range_gives_7_bit_weights_to_integer_matmuls_by_default(options, gemm_max, conv_max) -> None:
    """By default (and when asked) the Gemm's weights are 7-bit, [-63, 63] symmetric; the Conv's,
    dequantized to float, keep 8 bits; a mapping without reduce_range decides for itself."""
    qmodel = onnxq.quantize_dynamic(_digits(), **options)
    inits = {t.name: numpy_helper.to_array(t) for t in qmodel.graph.initializer}
    nodes = {o: n for n in qmodel.graph.node for o in n.output}
    gemm = next(n for n in qmodel.graph.node if n.op_type == "MatMulInteger")
    conv = next(n for n in qmodel.graph.node if n.op_type == "Conv")
    assert int(np.abs(inits[gemm.input[1]]).max()) == gemm_max
    assert int(np.abs(inits[nodes[conv.input[1]].input[0]]).max()) == conv_max


def test_per_tensor_gives_each_weight_one_scale() -> None:
    qmodel = onnxq.quantize_dynamic(_digits(), per_channel=False)
    scales = [t for t in qmodel.graph.initializer if t.name.endswith("_scale")]
    assert scales and all(len(t.dims) == 0 for t in scales)


def test_a_weight_that_is_not_constant_stays_float_with_the_reason(run_ort) -> None:
    w = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["a"], name="const"),
         helper.make_node("MatMul", ["a", "v"], ["y"], name="runtime")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 8]),
         helper.make_tensor_value_info("v", TensorProto.FLOAT, [4, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2])],
        [numpy_helper.from_array(w, "w")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    conversion = onnxq.convert_dynamic(model)
    reasons = {n.name: n.reason for n in conversion.report.nodes}
    assert reasons == {"const": None, "runtime": "weight 'v' is not a constant"}
    assert [n.op_type for n in conversion.model.graph.node].count("MatMul") == 1
    lines = conversion.report.format().splitlines()
    assert lines[0] == "quantized 1 of 2 nodes; dynamic: activations quantized at run time, no calibration"
    assert "  runtime (MatMul): weight 'v' is not a constant" in lines
    assert conversion.report.to_dict()["mode"] == "dynamic"


def test_mapping_none_keeps_a_node_float() -> None:
    mapping = QConfigMapping(get_default_qconfig("per_channel_dynamic")).set_op_type("Conv", None)
    conversion = onnxq.convert_dynamic(_digits(), qconfig_mapping=mapping)
    kinds = {n.op_type: (n.kind if n.quantized else n.reason) for n in conversion.report.nodes}
    assert kinds["Conv"] == "its qconfig is None (left in float by the QConfigMapping)"
    assert kinds["Gemm"] == "dynamic_matmul"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"format": "onnxq", "weight_dtype": "uint8"}, "format 'onnxq' runs int8 weights on onnxq's kernels"),
        ({"format": "qoperator"}, "dynamic format 'qoperator' (expected one of qdq, onnxruntime, onnxq"),
        ({"weight_dtype": "int4"}, "weight_dtype must be 'int8' or 'uint8', got 'int4'"),
        ({"op_types": {"Linear"}}, "unknown op type(s) for dynamic quantization: 'Linear' (known: MatMul"),
        ({"reduce_range": "yes"}, "reduce_range must be True, False or None, got 'yes'"),
    ],
)
def test_bad_options_are_one_line_config_errors(options: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        onnxq.quantize_dynamic(_digits(), **options)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_quantized_model_is_refused() -> None:
    with pytest.raises(UnsupportedModelError, match="already quantized"):
        onnxq.quantize_dynamic(onnxq.quantize_dynamic(_digits()))
