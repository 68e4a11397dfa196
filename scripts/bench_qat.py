"""Quantization-aware training against post-training quantization on the digits nets.

For each model (the ResNet-style and MobileNetV2-style nets of the end-to-end tests, trained by
``tests/digits.py``'s fp32 recipe) and setting, prints top-1 on the 500 held-out digits of:

- ``fp32``: the torch model;
- ``PTQ``: ``onnxq.torch.quantize_static`` (128 calibration samples, the setting's observers);
- ``QAT``: ``onnxq.torch.prepare_qat`` from the fp32 weights, ``--epochs`` epochs of fine-tuning
  (Adam, cosine LR from 3e-4; ranges observed during the first epoch, BatchNorm statistics frozen
  after the second), ``convert_qat`` (dynamo export);
- ``LSQ``: the same with ``QatConfig(learnable_scales=True)``: after the first epoch the
  activation scales train too;
- ``ao QAT``: PyTorch's eager QAT (``torch.ao.quantization.prepare_qat`` / ``convert``, the x86
  engine's default QAT qconfig) on the same net, data, optimizer and steps, observers and
  BatchNorm frozen at the same epochs; only in the ``x86`` setting, the one it supports (it has no
  4-bit kernels: a 4-bit fake-quant range would train, but its converted model requantizes to 8
  bits);
- ``agree``: the QAT model's ONNX against its torch fake-quant module: the share of test inputs
  with the same prediction, and the largest logit difference in steps of the output's scale.

The quantized ONNX models run on onnxruntime (CPU) with graph optimizations off: the QDQ graph as
it is, since onnxruntime has no QLinear kernels for 4 bits.
``QAT-PTQ``, ``QAT-fp32`` and ``LSQ-fp32`` are paired differences on the same 500 inputs with a 95% interval
(the normal approximation for paired proportions): one input is 0.2 points.

Settings (``--settings``):

- ``w4a4``: int4 symmetric weights per tensor, uint4 activations, min/max ranges: the plain
  post-training recipe at 4 bits, where PTQ loses over a point on both nets;
- ``x86``: onnxq's x86 preset (uint8 activations with reduce_range, int8 weights per channel),
  PyTorch's x86 QAT qconfig;
- ``w4``: int4 symmetric weights per tensor, x86's activations (not by default: PTQ loses under a
  point there).

Usage: ``python scripts/bench_qat.py [--models resnet mobilenetv2] [--settings w4a4 x86 w4]
[--epochs 4]``. One torch thread throughout: the nets are small.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.digits: the data split and training loop the tests use

import onnxq.torch as oqt  # noqa: E402
from onnxq.qconfig import QConfig, QSpec  # noqa: E402
from onnxq.torch.scopes import Site  # noqa: E402
from tests.digits import Digits, load_digits, run_epochs, train  # noqa: E402
from tests.e2e.models import BasicBlock, InvertedResidual  # noqa: E402

SETTINGS: dict[str, QConfig | str] = {
    "w4a4": QConfig(QSpec("uint4", observer="minmax"), QSpec("int4", symmetric=True, observer="minmax")),
    "x86": "x86",
    "w4": QConfig(
        QSpec("uint8", reduce_range=True, observer="histogram"),
        QSpec("int4", symmetric=True, observer="minmax"),
    ),
}
QAT_LR = 3e-4
BATCH = 64
CALIB_SAMPLES = 128


def run_onnx(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def run_torch(module: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def ptq(module: nn.Module, digits: Digits, qconfig: QConfig | str) -> onnx.ModelProto:
    x = torch.from_numpy(digits.x_train[:CALIB_SAMPLES])
    calib = [x[i : i + 32] for i in range(0, len(x), 32)]
    return oqt.quantize_static(module, x[:2], calib, qconfig)


def _fine_tune(model: nn.Module, digits: Digits, epochs: int, after_epoch: Any = None) -> None:
    """The QAT schedule both QAT columns share: Adam, cosine LR, one seeded data order."""
    steps = epochs * ((len(digits.x_train) + BATCH - 1) // BATCH)
    torch.manual_seed(0)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=QAT_LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    x, y = torch.from_numpy(digits.x_train), torch.from_numpy(digits.y_train)
    run_epochs(model, x, y, opt, sched, epochs, BATCH, after_epoch)
    model.eval()


def qat(
    module: nn.Module, digits: Digits, qconfig: QConfig | str, epochs: int, lsq: bool = False
) -> dict[str, Any]:
    """onnxq's QAT (``lsq``: learnable scales after the first epoch): the test logits of the
    converted ONNX model and of the fake-quant module, and the output's quantization step."""
    steps_per_epoch = (len(digits.x_train) + BATCH - 1) // BATCH
    config = oqt.QatConfig(
        observe_steps=steps_per_epoch, freeze_bn_steps=2 * steps_per_epoch, learnable_scales=lsq
    )
    model = oqt.prepare_qat(module, torch.from_numpy(digits.x_train[:2]), qconfig, config=config)
    _fine_tune(model, digits, epochs)
    fake_quant = run_torch(model, digits.x_test)
    out = model.fake_quant_at(Site("output", "fc"))
    assert out is not None, "both nets end in a quantized Linear named fc"
    return {
        "onnx": run_onnx(oqt.convert_qat(model), digits.x_test),
        "fake_quant": fake_quant,
        "step": out.qparams()[0],
    }


class _EagerResidual(nn.Module):
    """A residual block with its add (and ReLU) as a FloatFunctional, as eager mode needs:
    ``body(x) + shortcut(x)``, or ``body(x)`` without a shortcut."""

    def __init__(self, body: nn.Module, shortcut: nn.Module | None, relu: bool) -> None:
        super().__init__()
        self.body, self.shortcut, self.relu = body, shortcut, relu
        self.add = torch.ao.nn.quantized.FloatFunctional()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if self.shortcut is None:
            return y
        return (self.add.add_relu if self.relu else self.add.add)(y, self.shortcut(x))


class _EagerNet(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.quant, self.net = torch.ao.quantization.QuantStub(), net
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.net(self.quant(x)))


def _eager_ready(module: nn.Module) -> tuple[nn.Module, list[list[str]]]:
    """A copy of ``module`` eager quantization can take (quant stubs, FloatFunctional adds) and the
    module lists to fuse: Conv + BatchNorm (+ ReLU; eager mode does not fuse ReLU6)."""
    net = copy.deepcopy(module)
    for child in list(net.modules()):
        for attr, sub in list(child.named_children()):
            if isinstance(sub, BasicBlock):
                setattr(child, attr, _EagerResidual(sub.body, sub.shortcut, relu=True))
            elif isinstance(sub, InvertedResidual):
                shortcut = nn.Identity() if sub.use_residual else None
                setattr(child, attr, _EagerResidual(sub.body, shortcut, relu=False))
    fuse: list[list[str]] = []
    for name, child in net.named_modules():
        if isinstance(child, nn.Sequential):
            items = list(child.named_children())
            for i, (attr, sub) in enumerate(items[:-1]):
                if isinstance(sub, nn.Conv2d) and isinstance(items[i + 1][1], nn.BatchNorm2d):
                    group = [attr, items[i + 1][0]]
                    if i + 2 < len(items) and type(items[i + 2][1]) is nn.ReLU:
                        group.append(items[i + 2][0])
                    fuse.append([f"net.{name}.{m}" for m in group])
    return _EagerNet(net), fuse


def torch_ao_qat(module: nn.Module, digits: Digits, epochs: int) -> np.ndarray:
    """PyTorch's eager QAT on the x86 engine, same schedule as :func:`qat`; the converted model's
    test logits."""
    ao = torch.ao.quantization
    torch.backends.quantized.engine = "x86"
    model, fuse = _eager_ready(module)
    model.train()
    model = ao.fuse_modules_qat(model, fuse)
    model.qconfig = ao.get_default_qat_qconfig("x86")
    model = ao.prepare_qat(model)

    def freeze(done: int) -> None:
        if done == 1:
            model.apply(ao.disable_observer)
        if done == 2:
            model.apply(torch.ao.nn.intrinsic.qat.freeze_bn_stats)

    _fine_tune(model, digits, epochs, freeze)
    return run_torch(ao.convert(model), digits.x_test)


def paired(a: np.ndarray, b: np.ndarray) -> str:
    """``mean(a) - mean(b)`` of two per-input correctness vectors, in points, with a 95% interval."""
    d = a.astype(np.float64) - b.astype(np.float64)
    n = len(d)
    half = 1.96 * np.sqrt(max(np.mean(d**2) - np.mean(d) ** 2, 0.0) / n)
    return f"{100 * np.mean(d):+.1f} [{100 * (np.mean(d) - half):+.1f}, {100 * (np.mean(d) + half):+.1f}]"


def measure(model_name: str, setting: str, epochs: int, digits: Digits, fp32: nn.Module) -> list[str]:
    """One row of the table."""
    qconfig = SETTINGS[setting]
    y = digits.y_test
    correct = {
        "fp32": run_torch(fp32, digits.x_test).argmax(1) == y,
        "ptq": run_onnx(ptq(fp32, digits, qconfig), digits.x_test).argmax(1) == y,
    }
    q = qat(fp32, digits, qconfig, epochs)
    correct["qat"] = q["onnx"].argmax(1) == y
    correct["lsq"] = qat(fp32, digits, qconfig, epochs, lsq=True)["onnx"].argmax(1) == y
    ao = "-"
    if setting == "x86":
        ao = f"{100 * np.mean(torch_ao_qat(fp32, digits, epochs).argmax(1) == y):.1f}"
    same = np.mean(q["onnx"].argmax(1) == q["fake_quant"].argmax(1))
    steps = np.max(np.abs(q["onnx"] - q["fake_quant"])) / q["step"]
    return [
        model_name,
        setting,
        *(f"{100 * np.mean(correct[k]):.1f}" for k in ("fp32", "ptq", "qat", "lsq")),
        ao,
        paired(correct["qat"], correct["ptq"]),
        paired(correct["qat"], correct["fp32"]),
        paired(correct["lsq"], correct["fp32"]),
        f"{100 * same:.1f}% / {steps:.2f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet", "mobilenetv2"])
    parser.add_argument("--settings", nargs="+", default=["w4a4", "x86"], choices=list(SETTINGS))
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    digits = load_digits()
    print(f"test inputs: {len(digits.y_test)}; QAT: {args.epochs} epochs of {len(digits.y_train)} inputs")
    head = ["model", "setting", "fp32", "PTQ", "QAT", "LSQ", "ao QAT", "QAT-PTQ", "QAT-fp32", "LSQ-fp32"]
    head += ["agree / steps", "s"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for model_name in args.models:
        module = train(model_name, digits)
        for setting in args.settings:
            start = time.perf_counter()
            row = measure(model_name, setting, args.epochs, digits, module)
            print("| " + " | ".join([*row, f"{time.perf_counter() - start:.0f}"]) + " |", flush=True)


if __name__ == "__main__":
    main()
