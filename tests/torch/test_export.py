"""Tests of onnxq.torch.export: both torch exporters, opsets, dynamic batch, BN kept, clear errors."""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from onnxq.errors import OnnxqError
from onnxq.torch import ExportError, export

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")

EXPORTERS = [
    pytest.param(True, 18, id="dynamo-opset18"),
    pytest.param(True, 20, id="dynamo-opset20"),
    pytest.param(False, 13, id="torchscript-opset13"),
    pytest.param(False, 17, id="torchscript-opset17"),
]


class ConvBnNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv(x)))
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(y, 1), 1))


class TwoInputs(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return a + b, a * b


def make_net() -> ConvBnNet:
    torch.manual_seed(0)
    net = ConvBnNet()
    with torch.no_grad():  # non-trivial BN statistics, so folding them matters numerically
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
        net.bn.weight.uniform_(0.5, 1.5)
        net.bn.bias.uniform_(-0.2, 0.2)
    return net


def ort_run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def default_opset(model: onnx.ModelProto) -> int:
    return next(e.version for e in model.opset_import if e.domain in ("", "ai.onnx"))


@pytest.mark.parametrize(("dynamo", "opset"), EXPORTERS)
def test_export_matches_torch_at_requested_opset_with_dynamic_batch(dynamo, opset):
    net = make_net().eval()
    model = export(net, torch.randn(2, 3, 8, 8), None, dynamo=dynamo, opset=opset)
    onnx.checker.check_model(model)
    assert default_opset(model) == opset
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["output"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert Counter(n.op_type for n in model.graph.node)["BatchNormalization"] == 0  # folded by the exporter
    x = np.random.default_rng(0).standard_normal((5, 3, 8, 8)).astype(np.float32)  # batch 5, not 2
    (got,) = ort_run(model, {"input": x})
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    assert got.shape == (5, 4)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("dynamo", "opset"), [EXPORTERS[0], EXPORTERS[3]])
def test_export_keeps_batchnorm_when_asked(dynamo, opset):
    net = make_net().eval()
    model = export(net, torch.randn(2, 3, 8, 8), None, dynamo=dynamo, opset=opset, keep_batchnorm=True)
    bns = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    assert len(bns) == 1
    assert all(a.i == 0 for a in bns[0].attribute if a.name == "training_mode")  # inference-mode BN
    assert len(bns[0].output) == 1
    x = np.random.default_rng(1).standard_normal((3, 3, 8, 8)).astype(np.float32)
    (got,) = ort_run(model, {"input": x})
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_export_writes_the_returned_model_to_path(tmp_path):
    path = tmp_path / "net.onnx"
    model = export(make_net(), torch.randn(2, 3, 8, 8), path, dynamo=False, opset=17)
    assert path.is_file()
    saved = onnx.load(str(path))
    assert [n.op_type for n in saved.graph.node] == [n.op_type for n in model.graph.node]
    assert sorted(t.name for t in saved.graph.initializer) == sorted(t.name for t in model.graph.initializer)
    assert [p.name for p in tmp_path.iterdir()] == ["net.onnx"]  # no temporary files left behind


def test_export_restores_training_mode_and_exports_inference_graph():
    net = make_net().train()
    model = export(net, torch.randn(2, 3, 8, 8), None, dynamo=False, opset=13)
    assert net.training
    assert Counter(n.op_type for n in model.graph.node)["BatchNormalization"] == 0
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 8)).astype(np.float32)
    (got,) = ort_run(model, {"input": x})
    with torch.no_grad():
        want = net.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("dynamo", "opset"), [EXPORTERS[0], EXPORTERS[2]])
def test_export_names_several_inputs_and_outputs(dynamo, opset):
    a, b = torch.randn(2, 4), torch.randn(2, 4)
    model = export(TwoInputs(), (a, b), None, dynamo=dynamo, opset=opset)
    assert [i.name for i in model.graph.input] == ["input_0", "input_1"]
    assert [o.name for o in model.graph.output] == ["output_0", "output_1"]
    named = export(
        TwoInputs(), (a, b), None, dynamo=dynamo, opset=opset, input_names=["a", "b"], output_names=["s", "p"]
    )
    feeds = {"a": np.full((3, 4), 2.0, np.float32), "b": np.full((3, 4), 3.0, np.float32)}
    s, p = ort_run(named, feeds)
    np.testing.assert_array_equal(s, np.full((3, 4), 5.0, np.float32))
    np.testing.assert_array_equal(p, np.full((3, 4), 6.0, np.float32))


@pytest.mark.parametrize(
    ("dynamo", "opset", "message"),
    [
        (True, 13, "the dynamo exporter supports opsets 18-23, got 13"),
        (False, 21, "the TorchScript exporter supports opsets 7-20, got 21"),
    ],
)
def test_export_rejects_opset_outside_exporter_range(dynamo, opset, message):
    with pytest.raises(ExportError, match=message):
        export(make_net(), torch.randn(2, 3, 8, 8), None, dynamo=dynamo, opset=opset)


@pytest.mark.parametrize(
    ("module", "inputs", "message"),
    [
        (lambda x: x, "tensor", "module must be a torch.nn.Module, got function"),
        (
            "net",
            np.zeros((2, 3, 8, 8), np.float32),
            r"example_inputs\[0\] must be a torch.Tensor, got ndarray",
        ),
        ("net", (), "example_inputs is empty"),
        ("net", "tensor", r"expected 1 distinct non-empty input names, got \['a', 'b'\]"),
    ],
)
def test_export_rejects_bad_arguments_with_one_line(module, inputs, message):
    net = make_net() if module == "net" else module
    x = torch.randn(2, 3, 8, 8) if isinstance(inputs, str) else inputs
    names = ["a", "b"] if "input names" in message else None
    with pytest.raises(ExportError, match=message) as info:
        export(net, x, None, dynamo=False, opset=17, input_names=names)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, OnnxqError)


@pytest.mark.parametrize(("dynamo", "opset"), [EXPORTERS[0], EXPORTERS[3]])
def test_export_failure_names_module_exporter_and_opset(dynamo, opset):
    with pytest.raises(ExportError) as info:
        export(make_net(), torch.randn(2, 5, 8, 8), None, dynamo=dynamo, opset=opset)  # 5 channels, not 3
    text = str(info.value)
    exporter = "dynamo" if dynamo else "TorchScript"
    assert text.startswith(f"export of ConvBnNet failed ({exporter} exporter, opset {opset}): ")
    assert "channels" in text and "\n" not in text
    assert info.value.__cause__ is not None


def test_export_without_torch_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes "import torch" raise ImportError
    with pytest.raises(ExportError, match=r"needs PyTorch: pip install 'onnxq\[torch\]'"):
        export(object(), (), None, dynamo=False, opset=17)


def test_export_rejects_duplicate_output_names():
    with pytest.raises(ExportError, match=r"expected 2 distinct non-empty output names, got \['y', 'y'\]"):
        export(
            TwoInputs(),
            (torch.ones(2, 2), torch.ones(2, 2)),
            None,
            dynamo=False,
            opset=17,
            output_names=["y", "y"],
        )
