"""Lowered to onnxq's kernels, the zoo's and the digits CNN's QDQ models give the same bytes.

Convolutions, residual adds, max pools, global average pools, concats and nearest resizes are
lowered (the rest stays).

Each convolutional zoo module (both exporters, two opsets each; both presets) is quantized as in
``test_zoo.py``, lowered with :func:`onnxq.lower.lower` and run through
:func:`onnxq.runtime.InferenceSession`; its outputs must equal those of the QDQ model on stock
onnxruntime (all optimisations on, so onnxruntime runs its integer QLinearConv) exactly: both
compute ``bias + sum (x - zp) w`` in int32 and requantise with the same fp32 multiplier and
rounding. Between two lowered convs the activations stay NHWC: no Transpose is inserted. 1-D
convolutions are not lowered (stay QDQ, with the reason in the notes).

On CPUs where onnxruntime's u8 x s8 kernels saturate (x86 with AVX2 but no VNNI: ``vpmaddubsw``
sums pairs of products in int16), stock onnxruntime's bytes are not the model's exact integers;
there the QDQ side runs as its uint8 twin (same dequantized weights, onnxruntime's exact
U8U8 kernels): :func:`onnxq.passes.uint8_twin.exact_on_onnxruntime`.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from test_zoo import CASES, _batches, _export

import onnxq
from onnxq.kernels.custom_ops import DOMAIN
from onnxq.lower import lower
from onnxq.passes.uint8_twin import exact_on_onnxruntime
from onnxq.runtime import InferenceSession

pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning"
)

# zoo case -> 2-D convolutions it holds (all lowered)
CONV_CASES = {"squeeze_excite": 3, "unet": 4, "depthwise_hardswish": 3, "dynamic_batch": 1, "conv1d": 0}
# zoo case -> Concats it holds (all lowered: the U-Net's two skip connections)
CONCAT_CASES = {"unet": 2}
# zoo case -> nearest Resizes it holds (all lowered: a standard Resize of one of our op's NHWC output)
RESIZE_CASES = {"unet": 1}


def _same_outputs(
    qdq: onnx.ModelProto, lowered: onnx.ModelProto, feeds: list[dict[str, np.ndarray]], label: str
) -> None:
    # what is not lowered stays QDQ on onnxruntime's kernels: exact on both sides
    exact = exact_on_onnxruntime(qdq).SerializeToString()
    stock = ort.InferenceSession(exact, providers=["CPUExecutionProvider"])
    lowered_exact = exact_on_onnxruntime(lowered).SerializeToString()
    ours = InferenceSession(lowered_exact, providers=["CPUExecutionProvider"])
    for f in feeds:
        for k, (a, b) in enumerate(zip(stock.run(None, f), ours.run(None, f), strict=True)):
            np.testing.assert_array_equal(b, a, err_msg=f"{label}: output {k}")


@pytest.mark.parametrize("name", sorted(CONV_CASES))
def test_lowered_zoo_model_gives_the_qdq_models_bytes(name: str, export_torch, torch_exporter) -> None:  # type: ignore[no-untyped-def]
    case = CASES[name]
    exporter, opset = torch_exporter
    fp32 = _export(export_torch, case, exporter, opset)
    calibration = _batches(fp32, case, 8, seed=1)
    held_out = _batches(fp32, case, 3, seed=2, batch=7 if case.dynamic_batch else None)
    for preset in ("x86", "qnnpack"):
        label = f"{name}/{exporter}-{opset}/{preset}"
        prepared = onnxq.prepare(fp32, preset)
        prepared.calibrate(calibration, progress=False)
        qdq = prepared.convert()
        result = lower(qdq)
        assert result.lowered >= CONV_CASES[name], f"{label}: {result.notes}"
        convs = [n for n in result.model.graph.node if n.domain == DOMAIN and n.op_type == "QLinearConv"]
        assert len(convs) == CONV_CASES[name]
        ours = [n.op_type for n in result.model.graph.node if n.domain == DOMAIN]
        assert ours.count("QLinearConcat") == CONCAT_CASES.get(name, 0), f"{label}: {result.notes}"
        assert not [n for n in result.model.graph.node if n.op_type == "Concat" and n.domain == ""]
        made_by = {o: n for n in result.model.graph.node for o in n.output}
        resizes = [n for n in result.model.graph.node if n.op_type == "Resize"]
        assert len(resizes) == RESIZE_CASES.get(name, 0)
        assert all(made_by[n.input[0]].domain == DOMAIN for n in resizes), f"{label}: {result.notes}"
        assert (
            not [n for n in result.model.graph.node if n.op_type == "Conv" and n.domain == ""]
            or name == "conv1d"
        )
        if name == "conv1d":
            assert all("2-D convolutions only" in note for note in result.notes)
        _same_outputs(qdq, result.model, held_out, label)


def test_lowered_digits_cnn_keeps_nhwc_between_convs_and_its_accuracy() -> None:
    from importlib.resources import files

    data = files("onnxq") / "data"
    calib = np.load(str(data / "digits_calib.npz"))["input"]
    evaluation = np.load(str(data / "digits_eval.npz"))
    batches = [{"input": calib[i : i + 8]} for i in range(0, len(calib), 8)]
    qdq = onnxq.quantize_static(str(data / "digits_cnn.onnx"), batches, progress=False)
    result = lower(qdq)
    ops = [(n.domain, n.op_type) for n in result.model.graph.node]
    lowered = {"QLinearConv": 4, "QLinearAdd": 1, "MaxPool": 1, "QLinearGlobalAveragePool": 1, "QGemm": 1}
    for op, count in lowered.items():
        assert ops.count((DOMAIN, op)) == count, op
    assert ("", "Transpose") not in ops  # the whole network stays NHWC, down to the classifier's matrix
    assert ops.count((DOMAIN, "Quantize")) == 1 and ops.count((DOMAIN, "Dequantize")) == 0
    assert ops.count(("", "DequantizeLinear")) == 1  # the logits: the QGemm's uint8 matrix, dequantized
    images = evaluation["images"]
    _same_outputs(
        qdq, result.model, [{"input": images[i : i + 32]} for i in range(0, len(images), 32)], "digits"
    )


@pytest.mark.parametrize("quant_format", ["QDQ", "QOperator"])
def test_a_model_quantized_by_onnxruntimes_tool_runs_on_our_kernels_with_its_bytes(
    quant_format: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from importlib.resources import files

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    data = files("onnxq") / "data"
    calib = np.load(str(data / "digits_calib.npz"))["input"]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": calib[i : i + 8]} for i in range(0, len(calib), 8)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    out = tmp_path / "digits.int8.onnx"
    quantize_static(
        str(data / "digits_cnn.onnx"),
        str(out),
        Reader(),
        quant_format=getattr(QuantFormat, quant_format),
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
    )
    theirs = onnx.load(str(out))
    result = lower(theirs)
    assert result.notes == ()
    ours = [n.op_type for n in result.model.graph.node if n.domain == DOMAIN]
    assert ours.count("QLinearConv") == 4 and {"QLinearAdd", "QLinearGlobalAveragePool"} <= set(ours), ours
    assert not [
        n for n in result.model.graph.node if n.op_type in ("Conv", "QLinearConv") and n.domain != DOMAIN
    ]
    _same_outputs(
        theirs, result.model, [{"input": calib[i : i + 16]} for i in range(0, len(calib), 16)], quant_format
    )


def test_onnxruntimes_default_int8_activations_run_on_our_uint8_kernels_by_the_sign_flip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """onnxruntime's quantizer defaults to int8 activations. They run on onnxq's uint8 ops as
    ``q + 128`` with zero point ``zp + 128`` (exact). onnxruntime itself does not fuse every int8
    pattern: it runs the int8 Conv+Relu whose zero point is not -128 and the int8 Add in float
    between their DequantizeLinear and QuantizeLinear, where an fp32 sum lands on the other side of
    a rounding tie now and then. So a few logits differ by one quantization step, never more."""
    from importlib.resources import files

    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    data = files("onnxq") / "data"
    calib = np.load(str(data / "digits_calib.npz"))["input"]
    images = np.load(str(data / "digits_eval.npz"))["images"]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": calib[i : i + 8]} for i in range(0, len(calib), 8)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    out = tmp_path / "digits.int8.onnx"
    quantize_static(str(data / "digits_cnn.onnx"), str(out), Reader())  # all defaults: int8 activations
    theirs = onnx.load(str(out))
    result = lower(theirs)
    ours = [n.op_type for n in result.model.graph.node if n.domain == DOMAIN]
    assert result.notes == () and ours.count("QLinearConv") == 4 and "QLinearAdd" in ours, ours
    logits_scale = float(
        next(numpy_helper.to_array(t) for t in theirs.graph.initializer if t.name == "logits_scale")
    )
    exact = exact_on_onnxruntime(theirs).SerializeToString()
    want = ort.InferenceSession(exact, providers=["CPUExecutionProvider"]).run(None, {"input": images})[0]
    got = InferenceSession(result.model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"input": images}
    )[0]
    steps = np.abs(got - want) / logits_scale
    assert steps.max() <= 1.0 + 1e-4 and np.mean(steps > 0) < 0.01
    assert np.array_equal(got.argmax(1), want.argmax(1)) or np.mean(got.argmax(1) != want.argmax(1)) < 0.01
