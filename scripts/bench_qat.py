"""Quantization-aware training against post-training quantization on the digits nets.

For each model (the ResNet-style and MobileNetV2-style nets of the end-to-end tests) and setting,
prints top-1 on the held-out digits of: the fp32 model, onnxq's post-training quantization
(``onnxq.torch.quantize_static``, histogram calibration) and QAT (``prepare_qat`` from the fp32
weights, a few epochs of fine-tuning, ``convert_qat``); the quantized models run on onnxruntime.

Settings (activations: x86's uint8 with reduce_range):
- ``int4``: int4 symmetric weights per output channel;
- ``int4-pt``: int4 symmetric weights per tensor;
- ``int8-pt``: int8 symmetric weights per tensor;
- ``a4w8``: uint4 activations (histogram calibration), int8 symmetric weights per channel;
- ``a4w4``: uint4 activations, int4 symmetric weights per channel.

Usage: ``python scripts/bench_qat.py [--models resnet mobilenetv2] [--settings int4 int8-pt]
[--epochs 4]``. One torch thread throughout: the nets are small.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

import onnxq.torch as oqt
from onnxq.qconfig import QConfig, QSpec
from onnxq.scheme import PerChannel

ROOT = Path(__file__).resolve().parents[1]
ACTIVATION = QSpec("uint8", reduce_range=True, observer="histogram")
SETTINGS: dict[str, QConfig] = {
    "int4": QConfig(
        ACTIVATION,
        QSpec("int4", symmetric=True, granularity=PerChannel(), observer="per_channel_minmax"),
    ),
    "int4-pt": QConfig(ACTIVATION, QSpec("int4", symmetric=True, observer="minmax")),
    "int8-pt": QConfig(ACTIVATION, QSpec("int8", symmetric=True, observer="minmax")),
    "a4w8": QConfig(
        QSpec("uint4", observer="histogram"),
        QSpec("int8", symmetric=True, granularity=PerChannel(), observer="per_channel_minmax"),
    ),
    "a4w4": QConfig(
        QSpec("uint4", observer="histogram"),
        QSpec("int4", symmetric=True, granularity=PerChannel(), observer="per_channel_minmax"),
    ),
}
QAT_LR = 3e-4


def _load(name: str, path: Path) -> ModuleType:
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def e2e() -> ModuleType:
    """tests/e2e/conftest.py: the digits split and the fp32 training recipe."""
    _load("onnxq_e2e_digits_models", ROOT / "tests" / "e2e" / "models.py")
    return _load("onnxq_e2e_conftest", ROOT / "tests" / "e2e" / "conftest.py")


def top1_onnx(model: onnx.ModelProto, x: np.ndarray, y: np.ndarray) -> float:
    options = ort.SessionOptions()
    if any(
        i.data_type in (onnx.TensorProto.INT4, onnx.TensorProto.UINT4)
        for i in model.graph.initializer
        if i.name.endswith("zero_point") or i.dims == []
    ):
        # 4-bit activations: onnxruntime has no QLinear kernels for them, it runs the QDQ graph
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: x})[0]
    return float(np.mean(logits.argmax(1) == y))


def top1_torch(module: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float(np.mean(module(torch.from_numpy(x)).numpy().argmax(1) == y))


def ptq(module: torch.nn.Module, digits: Any, qconfig: QConfig) -> onnx.ModelProto:
    x = torch.from_numpy(digits.x_train[:128])
    calib = [x[i : i + 32] for i in range(0, len(x), 32)]
    return oqt.quantize_static(module, x[:2], calib, qconfig)


def qat(
    module: torch.nn.Module, digits: Any, qconfig: QConfig, epochs: int, batch: int = 64
) -> onnx.ModelProto:
    """``module`` fine-tuned with fake-quant for ``epochs`` epochs (Adam, cosine LR), converted."""
    steps_per_epoch = (len(digits.x_train) + batch - 1) // batch
    config = oqt.QatConfig(observe_steps=steps_per_epoch, freeze_bn_steps=2 * steps_per_epoch)
    x, y = torch.from_numpy(digits.x_train), torch.from_numpy(digits.y_train)
    model = oqt.prepare_qat(module, x[:2], qconfig, config=config)
    torch.manual_seed(0)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=QAT_LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps_per_epoch)
    e2e().run_epochs(model, x, y, opt, sched, epochs, batch)
    model.eval()
    return oqt.convert_qat(model)


def measure(
    model_name: str, setting: str, epochs: int, digits: Any = None, fp32: Any = None
) -> dict[str, float]:
    """``{"fp32": .., "ptq": .., "qat": ..}`` top-1 of ``model_name`` in ``setting``."""
    conf = e2e()
    digits = conf.load_digits() if digits is None else digits
    module = conf.train(model_name, digits) if fp32 is None else fp32
    qconfig = SETTINGS[setting]
    return {
        "fp32": top1_torch(module, digits.x_test, digits.y_test),
        "ptq": top1_onnx(ptq(module, digits, qconfig), digits.x_test, digits.y_test),
        "qat": top1_onnx(qat(module, digits, qconfig, epochs), digits.x_test, digits.y_test),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet", "mobilenetv2"])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    conf = e2e()
    digits = conf.load_digits()
    print(f"{'model':<12} {'setting':<8} {'fp32':>6} {'PTQ':>6} {'QAT':>6} {'seconds':>8}")
    for model_name in args.models:
        module = conf.train(model_name, digits)
        for setting in args.settings:
            start = time.perf_counter()
            r = measure(model_name, setting, args.epochs, digits, module)
            print(
                f"{model_name:<12} {setting:<8} {100 * r['fp32']:6.1f} {100 * r['ptq']:6.1f} "
                f"{100 * r['qat']:6.1f} {time.perf_counter() - start:8.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
