"""Tests of onnxq.torch's one-call quantization and QAT: module names in mappings, fake-quant placed
where the plan puts Q/DQ, and convert_qat's QDQ model agreeing with the fake-quant module."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from onnxq.errors import ConfigError
from onnxq.qconfig import QConfig, QSpec

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn.datasets")

import onnxq  # noqa: E402
import onnxq.torch as oqt  # noqa: E402
from onnxq.torch.scopes import Site, SiteFinder, node_modules  # noqa: E402
from tests.digits import load_digits, run_epochs  # noqa: E402
from tests.e2e.models import DigitsLSTM, DigitsResNet  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")

EXPORTERS = [pytest.param(True, id="dynamo"), pytest.param(False, id="torchscript")]
#: 4-bit weights and activations per tensor, min/max ranges (scripts/bench_qat.py's w4a4 setting)
W4A4 = QConfig(QSpec("uint4", observer="minmax"), QSpec("int4", symmetric=True, observer="minmax"))


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    d = load_digits()
    return tuple(torch.from_numpy(a) for a in (d.x_train, d.y_train, d.x_test, d.y_test))


def _train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float) -> None:
    run_epochs(model, x, y, torch.optim.Adam(model.parameters(), lr=lr), None, epochs)
    model.eval()


@pytest.fixture(scope="module")
def resnet(digits: tuple[torch.Tensor, ...]) -> torch.nn.Module:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = DigitsResNet(width=8)
        _train(model, digits[0], digits[1], epochs=3, lr=3e-3)
        return model
    finally:
        torch.set_num_threads(threads)


def _run(model: object, x: torch.Tensor) -> np.ndarray:
    options = ort.SessionOptions()  # the QDQ graph as it is: no QLinear kernels exist for 4 bits
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])  # type: ignore[attr-defined]
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def _float_weight_nodes(model: object) -> set[str]:
    dq_outputs = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}  # type: ignore[attr-defined]
    return {n.name for n in model.graph.node if n.op_type == "Conv" and n.input[1] not in dq_outputs}  # type: ignore[attr-defined]


def test_quantize_static_module_name_none_keeps_module_float(
    resnet: torch.nn.Module, digits: tuple[torch.Tensor, ...], dynamo: bool = False
) -> None:
    # the names of a dynamo export's nodes are checked by test_fake_quant_placement_equals_the_plan
    x = digits[0][:64]
    calib = [x[i : i + 32] for i in range(0, 64, 32)]
    mapping = {"global": "x86", "module_name": {"stages.0.body.0": None}}
    qmodel = oqt.quantize_static(resnet, x[:2], calib, mapping, dynamo=dynamo)
    floats = _float_weight_nodes(qmodel)
    assert len(floats) == 1
    export, _ = oqt.quantize.export_for_onnxq(resnet, x[:2], dynamo=dynamo, opset=None)
    assert node_modules(export, resnet)[floats.pop()] == "stages.0.body.0"
    assert np.mean(_run(qmodel, digits[2]).argmax(1) == digits[3].numpy()) > 0.9


def test_mapping_naming_a_missing_module_is_refused(resnet: torch.nn.Module) -> None:
    with pytest.raises(ConfigError, match="layer9"):
        oqt.quantize_static(
            resnet, torch.zeros(2, 1, 8, 8), [], {"module_name": {"layer9": None}}, dynamo=False
        )


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_fake_quant_placement_equals_the_plan(resnet: torch.nn.Module, dynamo: bool) -> None:
    example = torch.zeros(2, 1, 8, 8)
    qat = oqt.prepare_qat(resnet, example, "x86", dynamo=dynamo)
    export, _ = oqt.quantize.export_for_onnxq(resnet, example, dynamo=dynamo, opset=None)
    prepared = onnxq.prepare(export, "x86")
    finder = SiteFinder(export, node_modules(export, resnet), prepared.model)
    planned = {finder.site(v): i for i, g in enumerate(prepared.plan.groups) for v in g.observed}
    assert {s: str(i) for s, i in planned.items()} == {s: str(i) for s, i in qat.sites.items()}
    wrappers = [m for m in qat.model.modules() if isinstance(m, oqt.qat.OutputFQ)]
    inputs = [s for s in qat.sites if s.kind == "input"]
    assert len(wrappers) + len(inputs) == len(planned) and inputs == [Site("input")]
    quant_weights = [
        m for m in qat.model.modules() if isinstance(m, (oqt.qat.QuantConv, oqt.qat.QuantLinear))
    ]
    assert len(quant_weights) == len(prepared.plan.weights)
    # fused Conv + BN + ReLU: the fake-quant sits after the ReLU only
    assert isinstance(qat.model.get_submodule("stem.2"), oqt.qat.OutputFQ)
    assert isinstance(qat.model.get_submodule("stem.0"), oqt.qat.QuantConv)
    assert isinstance(qat.model.get_submodule("stem.1"), torch.nn.Identity)


def test_convert_qat_before_training_is_refused(resnet: torch.nn.Module) -> None:
    qat = oqt.prepare_qat(resnet, torch.zeros(2, 1, 8, 8), "x86", dynamo=False)  # the faster exporter
    with pytest.raises(ConfigError, match="not been trained"):
        oqt.convert_qat(qat)


@pytest.mark.parametrize("qconfig", [pytest.param("x86", id="x86"), pytest.param(W4A4, id="w4a4-per-tensor")])
def test_convert_qat_matches_the_fake_quant_module(
    resnet: torch.nn.Module, digits: tuple[torch.Tensor, ...], qconfig: object
) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = oqt.QatConfig(observe_steps=10, freeze_bn_steps=15)
        qat = oqt.prepare_qat(resnet, digits[0][:2], qconfig, config=config, dynamo=False)
        _train(qat, digits[0][:1280], digits[1][:1280], epochs=1, lr=1e-4)
        assert int(qat.steps) == 20
        with torch.no_grad():
            expected = qat(digits[2]).numpy()
        qmodel = oqt.convert_qat(qat)
    finally:
        torch.set_num_threads(threads)
    got = _run(qmodel, digits[2])
    assert np.mean(got.argmax(1) == expected.argmax(1)) >= 0.995
    out_scale, _ = qat.fake_quant_at(Site("output", "fc")).qparams()
    steps = np.abs(got - expected) / out_scale
    # the biases are fake-quantized on the int32 grid the QDQ model stores them on: what is left is
    # float rounding (accumulation order), a step apart at a tie at most
    assert steps.max() <= 1.001
    assert np.mean(steps < 0.5) >= 0.99
    q_nodes = sum(n.op_type == "QuantizeLinear" for n in qmodel.graph.node)
    assert q_nodes >= len(qat.sites)  # pass-through outputs (Flatten) get a pair of their own


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_quantize_dynamic_equals_onnxq_on_the_export(dynamo: bool) -> None:
    torch.manual_seed(0)
    model = DigitsLSTM(hidden=16).eval()
    x = torch.rand(2, 1, 8, 8)
    ours = oqt.quantize_dynamic(model, {torch.nn.Linear, torch.nn.LSTM}, x, dynamo=dynamo)
    export, _ = oqt.quantize.export_for_onnxq(model, x, dynamo=dynamo, opset=None)
    theirs = onnxq.quantize_dynamic(export, per_channel=True)
    assert [n.op_type for n in ours.graph.node] == [n.op_type for n in theirs.graph.node]
    assert "DynamicQuantizeLinear" in {n.op_type for n in ours.graph.node}
    arrays = {i.name: onnx.numpy_helper.to_array(i) for i in theirs.graph.initializer}
    for init in ours.graph.initializer:
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(init), arrays[init.name])
    batch = torch.rand(16, 1, 8, 8)
    np.testing.assert_array_equal(_run(ours, batch), _run(theirs, batch))


def test_learnable_scales_train_and_reach_the_qdq_model() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = DigitsResNet(width=4)
        config = oqt.QatConfig(observe_steps=2, freeze_bn_steps=2, learnable_scales=True)
        qat = oqt.prepare_qat(model, torch.rand(2, 1, 8, 8), "x86", config=config, dynamo=False)
        x, y = torch.rand(8 * 32, 1, 8, 8), torch.randint(0, 10, (8 * 32,))
        _train(qat, x[:64], y[:64], epochs=1, lr=1e-2)  # 2 steps: observing only
        observed = {k: float(fq.scale.detach()) for k, fq in qat.fake_quants.items()}
        _train(qat, x, y, epochs=1, lr=1e-2)
    finally:
        torch.set_num_threads(threads)
    trained = {k: float(fq.scale.detach()) for k, fq in qat.fake_quants.items()}
    assert sum(trained[k] != observed[k] for k in trained) >= len(trained) // 2
    qmodel = oqt.convert_qat(qat)
    scales = {
        float(onnx.numpy_helper.to_array(i))
        for i in qmodel.graph.initializer
        if i.data_type == onnx.TensorProto.FLOAT and not i.dims
    }
    assert set(np.float32(list(trained.values())).tolist()) <= scales


def test_float_outputs_leave_the_heads_output_without_fake_quant_and_qdq() -> None:
    torch.manual_seed(0)
    model, example = DigitsResNet(width=4), torch.rand(2, 1, 8, 8)
    config = oqt.QatConfig(observe_steps=2, freeze_bn_steps=2)
    default = oqt.prepare_qat(model, example, "x86", config=config, dynamo=False)
    qat = oqt.prepare_qat(model, example, "x86", config=config, dynamo=False, float_outputs=True)
    assert default.fake_quant_at(Site("output", "fc")) is not None
    assert qat.fake_quant_at(Site("output", "fc")) is None
    assert len(qat.fake_quants) == len(default.fake_quants) - 1
    x, y = torch.rand(3 * 64, 1, 8, 8), torch.randint(0, 10, (3 * 64,))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _train(qat, x, y, epochs=1, lr=1e-3)  # 3 steps: 2 observing, 1 with frozen ranges
    finally:
        torch.set_num_threads(threads)
    qmodel = oqt.convert_qat(qat)
    producers = {o: n for n in qmodel.graph.node for o in n.output}
    head = producers[qmodel.graph.output[0].name]
    assert head.op_type == "Gemm" and producers[head.input[0]].op_type == "DequantizeLinear"
    with torch.no_grad():
        expected = qat(x[:64]).numpy()
    got = _run(qmodel, x[:64])  # the trained fake-quant module and its QDQ model agree
    np.testing.assert_allclose(got, expected, atol=1e-3 * float(np.abs(expected).max()))
