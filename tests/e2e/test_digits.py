"""End-to-end proof on real exports: digits-trained models, both torch exporters, two opsets each.

For every model x exporter x opset the fp32 export is quantized with ``onnxq.prepare`` /
``calibrate`` / ``convert`` (x86 preset: histogram activations, per-channel int8 weights) on 128
training images, and on the 500 held-out images the int8 model, run by onnxruntime with graph
optimisations on and off, must:

- be within 1.0 top-1 point of the fp32 model and agree with its predictions on >= 99% of images;
- be at most 0.30x the fp32 file (serialized bytes);
- have int8 weights in the file, int32 biases, no BatchNormalization, and no Q/DQ between a Conv /
  Gemm and its activation; onnxruntime must turn every Conv / Gemm into its int8 kernel (known gap:
  a Conv + ReLU6 under the x86 preset's reduce_range stays fp32 in onnxruntime; strict xfail).

A ResNet exported with BatchNormalization kept in the graph (inference mode, both exporters) and one
exported in training mode (TorchScript, ``training_mode=1``) prove BN folding on real exports.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import onnxq
from onnxq.report import QuantizationReport

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")

MODEL_NAMES = ("resnet", "mobilenetv2", "mlp")
EXPORTERS = ((True, 18), (True, 20), (False, 13), (False, 17))
CASES = [
    pytest.param(name, dynamo, opset, id=f"{name}-{'dynamo' if dynamo else 'torchscript'}-opset{opset}")
    for name in MODEL_NAMES
    for dynamo, opset in EXPORTERS
]
ORT_LEVELS = {
    "optimized": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    "unoptimized": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
}
MAX_TOP1_DROP = 0.010
MIN_AGREEMENT = 0.99
MAX_SIZE_RATIO = 0.30
ANCHORS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
ACTIVATIONS = ("Relu", "Clip", "LeakyRelu")


# "minmax": the settings of onnxruntime.quantization.quantize_static with MinMax calibration,
# per-tensor symmetric int8 weights and uint8 activations, for a like-for-like comparison.
QCONFIGS: dict[str, Any] = {
    "x86": "x86",
    "qnnpack": "qnnpack",
    "minmax": onnxq.QConfig(
        activation=onnxq.QSpec("uint8", observer="minmax"),
        weight=onnxq.QSpec("int8", symmetric=True, observer="minmax"),
    ),
}


@dataclass(frozen=True)
class Quantized:
    export: Any  # conftest.Export
    proto: onnx.ModelProto
    path: Path
    report: QuantizationReport


@pytest.fixture(scope="session")
def quantized(
    exported: Callable[..., Any], digits: Any, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Quantized]:
    """``quantized(model_name, dynamo, opset, keep_batchnorm=False, qconfig="x86")``: made once."""
    root = tmp_path_factory.mktemp("digits-int8")
    cache: dict[tuple[str, bool, int, bool, str], Quantized] = {}

    def get(
        model_name: str, dynamo: bool, opset: int, keep_batchnorm: bool = False, qconfig: str = "x86"
    ) -> Quantized:
        key = (model_name, dynamo, opset, keep_batchnorm, qconfig)
        if key not in cache:
            fp32 = exported(model_name, dynamo, opset, keep_batchnorm)
            prepared = onnxq.prepare(fp32.path, QCONFIGS[qconfig])
            prepared.calibrate(digits.calibration_batches(), progress=False)
            proto = prepared.convert()
            path = onnxq.save_model(proto, root / f"{fp32.label}.{qconfig}.int8.onnx")
            cache[key] = Quantized(fp32, proto, Path(path), prepared.report)
        return cache[key]

    return get


def ort_logits(
    model: Path | onnx.ModelProto, x: np.ndarray, level: str, optimized_path: Path | None = None
) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ORT_LEVELS[level]
    options.log_severity_level = 3
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def op_counts(model: onnx.ModelProto) -> Counter[str]:
    return Counter(node.op_type for node in model.graph.node)


def constant_tensors(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    """Initializers and Constant-node values by the name of the value they define."""
    tensors = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    tensors[node.output[0]] = attr.t
    return tensors


def anchor_activation_pairs(model: onnx.ModelProto) -> set[tuple[str, str]]:
    """(anchor output, activation op) for each activation fed by an anchor, directly or through a BN."""
    producers = {out: node for node in model.graph.node for out in node.output}
    pairs: set[tuple[str, str]] = set()
    for node in model.graph.node:
        if node.op_type not in ACTIVATIONS:
            continue
        src = producers.get(node.input[0])
        if src is not None and src.op_type == "BatchNormalization":
            src = producers.get(src.input[0])
        if src is not None and src.op_type in ANCHORS:
            pairs.add((src.output[0], node.op_type))
    return pairs


def assert_no_qdq_inside_fusions(q: onnx.ModelProto, fp32: onnx.ModelProto) -> None:
    producers = {out: node for node in q.graph.node for out in node.output}
    for node in q.graph.node:
        if node.op_type not in ACTIVATIONS:
            continue
        dq = producers.get(node.input[0])
        if dq is None or dq.op_type != "DequantizeLinear":
            continue
        qn = producers.get(dq.input[0])
        src = producers.get(qn.input[0]) if qn is not None and qn.op_type == "QuantizeLinear" else None
        assert src is None or src.op_type not in ANCHORS, (
            f"Q/DQ between {src.op_type} {src.name!r} and its {node.op_type} {node.name!r}"
        )
    expected = Counter(act for _, act in anchor_activation_pairs(fp32))
    got = Counter(act for _, act in anchor_activation_pairs(q))
    assert sum(expected.values()) > 0, "the fp32 model has no Conv/Gemm followed by an activation"
    assert got == expected, f"anchor->activation edges: fp32 {dict(expected)}, int8 {dict(got)}"


def assert_weights_stored_as_int8(q: onnx.ModelProto) -> None:
    producers = {out: node for node in q.graph.node for out in node.output}
    tensors = constant_tensors(q)
    anchors = [n for n in q.graph.node if n.op_type in ANCHORS]
    assert anchors
    for node in anchors:
        for position, dtype in ((0, None), (1, onnx.TensorProto.INT8), (2, onnx.TensorProto.INT32)):
            if position >= len(node.input) or not node.input[position]:
                continue
            dq = producers.get(node.input[position])
            assert dq is not None and dq.op_type == "DequantizeLinear", (
                f"{node.op_type} {node.name!r} input {position} is not dequantized"
            )
            if dtype is None:
                continue
            stored = tensors.get(dq.input[0])
            assert stored is not None and stored.data_type == dtype, (
                f"{node.op_type} {node.name!r} input {position}: expected a stored "
                f"{onnx.TensorProto.DataType.Name(dtype)} tensor"
            )
    float_bytes = sum(
        numpy_helper.to_array(t).nbytes for t in q.graph.initializer if t.data_type == onnx.TensorProto.FLOAT
    )
    int8_bytes = sum(
        numpy_helper.to_array(t).nbytes for t in q.graph.initializer if t.data_type == onnx.TensorProto.INT8
    )
    assert float_bytes < 0.2 * int8_bytes, f"fp32 tensors {float_bytes} B vs int8 weights {int8_bytes} B"


@pytest.mark.parametrize(("model_name", "dynamo", "opset"), CASES)
def test_fp32_export_matches_torch_on_held_out_digits(model_name, dynamo, opset, exported, digits):
    fp32 = exported(model_name, dynamo, opset)
    logits = ort_logits(fp32.path, digits.x_test, "optimized")
    scale = float(np.abs(fp32.torch_logits).max())
    np.testing.assert_allclose(logits, fp32.torch_logits, rtol=0, atol=1e-4 * scale)
    accuracy = float((logits.argmax(1) == digits.y_test).mean())
    assert accuracy >= 0.95, f"{fp32.label}: fp32 top-1 {accuracy:.3f}; the model is under-trained"


@pytest.mark.parametrize("level", sorted(ORT_LEVELS))
@pytest.mark.parametrize(("model_name", "dynamo", "opset"), CASES)
def test_int8_keeps_accuracy_on_held_out_digits(model_name, dynamo, opset, level, quantized, digits):
    q = quantized(model_name, dynamo, opset)
    fp32_logits = ort_logits(q.export.path, digits.x_test, level)
    int8_logits = ort_logits(q.path, digits.x_test, level)
    fp32_pred, int8_pred = fp32_logits.argmax(1), int8_logits.argmax(1)
    fp32_top1 = float((fp32_pred == digits.y_test).mean())
    int8_top1 = float((int8_pred == digits.y_test).mean())
    agreement = float((fp32_pred == int8_pred).mean())
    logging.getLogger(__name__).info(
        "%s %s: fp32 %.3f int8 %.3f agreement %.3f", q.export.label, level, fp32_top1, int8_top1, agreement
    )
    assert abs(fp32_top1 - int8_top1) <= MAX_TOP1_DROP + 1e-9, (
        f"{q.export.label} ({level}): top-1 fp32 {fp32_top1:.3f} vs int8 {int8_top1:.3f}"
    )
    assert agreement >= MIN_AGREEMENT, f"{q.export.label} ({level}): agreement {agreement:.3f}"
    # really quantized: the logits move, but only by a fraction of their range
    err = float(np.abs(int8_logits - fp32_logits).max())
    span = float(np.abs(fp32_logits).max())
    assert 0.0 < err < 0.25 * span, (
        f"{q.export.label} ({level}): max |int8 - fp32| logit {err:.4f}, span {span:.2f}"
    )


@pytest.mark.parametrize(("model_name", "dynamo", "opset"), CASES)
def test_int8_file_is_at_most_030x_fp32(model_name, dynamo, opset, quantized):
    q = quantized(model_name, dynamo, opset)
    fp32_bytes = q.export.path.stat().st_size
    int8_bytes = q.path.stat().st_size
    ratio = int8_bytes / fp32_bytes
    assert ratio <= MAX_SIZE_RATIO, (
        f"{q.export.label}: int8 {int8_bytes} B / fp32 {fp32_bytes} B = {ratio:.3f}"
    )


@pytest.mark.parametrize(("model_name", "dynamo", "opset"), CASES)
def test_int8_graph_has_int8_weights_and_no_qdq_inside_fusions(model_name, dynamo, opset, quantized):
    q = quantized(model_name, dynamo, opset)
    counts = op_counts(q.proto)
    assert counts["BatchNormalization"] == 0
    assert counts["QuantizeLinear"] > 0 and counts["DequantizeLinear"] > counts["QuantizeLinear"]
    assert_weights_stored_as_int8(q.proto)
    assert_no_qdq_inside_fusions(q.proto, q.export.proto)
    assert not q.report.unreached
    fp32_counts = op_counts(q.export.proto)
    assert counts["Conv"] == fp32_counts["Conv"]


RELU6_XFAIL = pytest.mark.xfail(
    strict=True,
    reason="x86 preset uses reduce_range: onnxruntime drops a ReLU6 Clip before QuantizeLinear only when "
    "the Q range over the full uint8 domain (scale * (255 - zp)) fits in [0, 6], so those Convs stay fp32",
)
ORT_INT8_CASES = [
    pytest.param(*case.values, marks=RELU6_XFAIL, id=case.id) if case.values[0] == "mobilenetv2" else case
    for case in CASES
]


def assert_onnxruntime_fuses_to_int8(q: Quantized, x: np.ndarray, tmp_path: Path) -> None:
    optimized = tmp_path / "optimized.onnx"
    ort_logits(q.path, x, "optimized", optimized_path=optimized)
    counts = op_counts(onnx.load(str(optimized)))
    fp32_counts = op_counts(q.export.proto)
    assert counts["QLinearConv"] == fp32_counts["Conv"], dict(counts)
    assert counts["QGemm"] == fp32_counts["Gemm"], dict(counts)
    assert counts["Conv"] == counts["FusedConv"] == counts["Gemm"] == counts["MatMul"] == 0, dict(counts)


@pytest.mark.parametrize(("model_name", "dynamo", "opset"), ORT_INT8_CASES)
def test_onnxruntime_runs_every_conv_and_gemm_in_int8(model_name, dynamo, opset, quantized, digits, tmp_path):
    assert_onnxruntime_fuses_to_int8(quantized(model_name, dynamo, opset), digits.x_test[:4], tmp_path)


@pytest.mark.parametrize(
    ("dynamo", "opset"), [(True, 18), (False, 13)], ids=["dynamo-opset18", "torchscript-opset13"]
)
def test_onnxruntime_runs_relu6_convs_in_int8_without_reduce_range(
    dynamo, opset, quantized, digits, tmp_path
):
    q = quantized("mobilenetv2", dynamo, opset, qconfig="qnnpack")
    assert op_counts(q.export.proto)["Clip"] > 0
    assert_onnxruntime_fuses_to_int8(q, digits.x_test[:4], tmp_path)


@pytest.mark.parametrize(
    ("dynamo", "opset"), [(True, 18), (False, 17)], ids=["dynamo-opset18", "torchscript-opset17"]
)
def test_batchnorm_left_by_exporter_is_folded_and_accuracy_kept(dynamo, opset, quantized, digits):
    q = quantized("resnet", dynamo, opset, keep_batchnorm=True)
    fp32_counts = op_counts(q.export.proto)
    assert fp32_counts["BatchNormalization"] == fp32_counts["Conv"] > 0
    counts = op_counts(q.proto)
    assert counts["BatchNormalization"] == 0
    assert counts["Conv"] == fp32_counts["Conv"]
    assert_weights_stored_as_int8(q.proto)
    assert_no_qdq_inside_fusions(q.proto, q.export.proto)
    for level in ORT_LEVELS:
        fp32_pred = ort_logits(q.export.path, digits.x_test, level).argmax(1)
        int8_pred = ort_logits(q.path, digits.x_test, level).argmax(1)
        fp32_top1 = float((fp32_pred == digits.y_test).mean())
        int8_top1 = float((int8_pred == digits.y_test).mean())
        assert abs(fp32_top1 - int8_top1) <= MAX_TOP1_DROP + 1e-9, (
            f"{level}: {fp32_top1:.3f} vs {int8_top1:.3f}"
        )
        assert float((fp32_pred == int8_pred).mean()) >= MIN_AGREEMENT


@pytest.mark.filterwarnings("ignore:ONNX Preprocess - Removing mutation:UserWarning")
def test_training_mode_export_is_quantized_with_running_statistics(trained, digits, tmp_path):
    """TorchScript's training-mode export keeps BN with training_mode=1 (batch statistics)."""
    torch = pytest.importorskip("torch")
    module = trained("resnet")
    path = tmp_path / "resnet-training.onnx"
    module.train()
    try:
        torch.onnx.export(
            module, (torch.from_numpy(digits.x_train[:2]),), str(path), dynamo=False, opset_version=17,
            training=torch.onnx.TrainingMode.TRAINING, input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )  # fmt: skip
    finally:
        module.eval()
    fp32 = onnx.load(str(path))
    bns = [n for n in fp32.graph.node if n.op_type == "BatchNormalization"]
    assert len(bns) == op_counts(fp32)["Conv"] > 0
    assert all(a.i == 1 for n in bns for a in n.attribute if a.name == "training_mode")
    q = onnxq.quantize_static(path, digits.calibration_batches(), "x86", progress=False)
    assert op_counts(q)["BatchNormalization"] == 0
    assert_weights_stored_as_int8(q)
    with torch.no_grad():
        eval_pred = module(torch.from_numpy(digits.x_test)).numpy().argmax(1)
    for level in ORT_LEVELS:
        int8_pred = ort_logits(q, digits.x_test, level).argmax(1)
        eval_top1 = float((eval_pred == digits.y_test).mean())
        int8_top1 = float((int8_pred == digits.y_test).mean())
        assert abs(eval_top1 - int8_top1) <= MAX_TOP1_DROP + 1e-9, (
            f"{level}: {eval_top1:.3f} vs {int8_top1:.3f}"
        )
        assert float((eval_pred == int8_pred).mean()) >= MIN_AGREEMENT


def ort_quantize_static(fp32_path: Path, out_path: Path, batches: list[dict[str, np.ndarray]]) -> Path:
    """onnxruntime's own quantizer at the "minmax" settings: the baseline."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    quantize_static(
        str(fp32_path), str(out_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=False,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=False,
        calibrate_method=CalibrationMethod.MinMax,
    )  # fmt: skip
    return out_path


@pytest.mark.parametrize(
    ("model_name", "dynamo", "opset"), [c for c in CASES if c.values[1:] in ((True, 18), (False, 13))]
)
def test_int8_error_not_worse_than_onnxruntime_quantizer_at_equal_settings(
    model_name, dynamo, opset, quantized, digits, tmp_path
):
    q = quantized(model_name, dynamo, opset, qconfig="minmax")
    theirs = ort_quantize_static(q.export.path, tmp_path / "ort.int8.onnx", digits.calibration_batches())
    fp32 = ort_logits(q.export.path, digits.x_test, "optimized")
    ours_logits = ort_logits(q.path, digits.x_test, "optimized")
    theirs_logits = ort_logits(theirs, digits.x_test, "optimized")
    ours_err = float(np.sqrt(np.mean((ours_logits - fp32) ** 2)))
    theirs_err = float(np.sqrt(np.mean((theirs_logits - fp32) ** 2)))
    assert 0.0 < ours_err <= 1.05 * theirs_err, (
        f"{q.export.label}: RMS logit error ours {ours_err:.4f}, theirs {theirs_err:.4f}"
    )
    ours_agree = float((ours_logits.argmax(1) == fp32.argmax(1)).mean())
    theirs_agree = float((theirs_logits.argmax(1) == fp32.argmax(1)).mean())
    assert ours_agree >= theirs_agree - 0.002, (
        f"{q.export.label}: agreement ours {ours_agree}, theirs {theirs_agree}"
    )


@pytest.mark.parametrize(
    ("model_name", "dynamo", "opset"),
    [c for c in CASES if c.values[0] != "mlp" and c.values[1:] in ((True, 18), (False, 13))],
)
def test_compare_matches_every_quantized_layer_of_torch_exports(
    model_name, dynamo, opset, quantized, digits, tmp_path
):
    """``onnxq compare`` on torch exports (both exporters) quantized by onnxq and by onnxruntime:
    every QuantizeLinear of an fp32 tensor is matched, the logits' accumulated SQNR is the one
    numpy computes from the two models' outputs, and every layer's introduced error is finite."""
    from onnxq.compare import compare

    q = quantized(model_name, dynamo, opset, qconfig="minmax")
    theirs = ort_quantize_static(q.export.path, tmp_path / "ort.int8.onnx", digits.calibration_batches())
    x = digits.x_test[:48]
    fp32 = ort_logits(q.export.path, x, "unoptimized")
    input_name = q.export.proto.graph.input[0].name
    fp32_names = {o for n in q.export.proto.graph.node for o in n.output} | {input_name}
    for path in (q.path, theirs):
        proto = onnx.load(path)
        quantized_fp32 = {n.input[0] for n in proto.graph.node if n.op_type == "QuantizeLinear"}
        outputs = {o.name for o in proto.graph.output}  # a quantized graph output keeps its name on its DQ
        quantized_fp32 |= {n.output[0] for n in proto.graph.node if n.op_type == "DequantizeLinear"} & outputs
        report = compare(q.export.path, path, [{input_name: x}])
        assert {layer.tensor for layer in report.layers} == quantized_fp32 & fp32_names
        logits = next(layer for layer in report.layers if layer.tensor == "logits")
        got = ort_logits(path, x, "unoptimized").astype(np.float64)
        want = 10 * np.log10(np.sum(fp32.astype(np.float64) ** 2) / np.sum((fp32 - got) ** 2))
        assert logits.accumulated.sqnr_db == pytest.approx(float(want), rel=1e-6)
        for layer in report.layers:
            assert np.isfinite(layer.introduced.sqnr_db) and layer.introduced.cosine > 0.9, layer.tensor
