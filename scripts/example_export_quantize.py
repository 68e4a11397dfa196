#!/usr/bin/env python
"""Example: train a small CNN in PyTorch, export it to ONNX, quantize it to int8 with onnxq, check it.

The whole user flow in one file, on scikit-learn's 8x8 handwritten digits (needs the ``torch`` and
``dev`` extras: ``pip install 'onnxq[torch,dev]'``)::

    python scripts/example_export_quantize.py --out-dir digits-model
    python scripts/example_export_quantize.py --out-dir digits-model --exporter torchscript --opset 17

It writes ``model.onnx`` (fp32), ``calib.npz`` (calibration samples, usable with
``onnxq quantize model.onnx --calib calib.npz``) and ``model.int8.onnx``, then prints the accuracy
of both models under onnxruntime, their agreement and their sizes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

import onnxq
from onnxq.runtime import make_session
from onnxq.torch import export

CALIB_SAMPLES = 256


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1, stride=2), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 128, 3, padding=1, stride=2), nn.BatchNorm2d(128), nn.ReLU(),
        )  # fmt: skip
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(128 * 2 * 2, 256), nn.ReLU(), nn.Linear(256, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def digits_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data = load_digits()
    x = (data.images.astype(np.float32) / 16.0)[:, None]
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    test, train = order[:400], order[400:]
    return x[train], y[train], x[test], y[test]


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int = 8) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = order[i : i + 64]
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def predict(path: Path, x: np.ndarray) -> np.ndarray:
    session = make_session(path)
    return session.run(None, {session.get_inputs()[0].name: x})[0].argmax(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export a digits CNN to ONNX and quantize it with onnxq.")
    parser.add_argument("--out-dir", type=Path, required=True, help="directory for the model files")
    parser.add_argument("--exporter", choices=("dynamo", "torchscript"), default="dynamo")
    parser.add_argument("--opset", type=int, help="default: 18 (dynamo) or 17 (torchscript)")
    parser.add_argument("--qconfig", default="x86", help="preset (x86, fbgemm, qnnpack, arm) or a JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("onnxq").setLevel(logging.INFO)  # what onnxq did; the exporters stay quiet
    log = logging.getLogger("example")
    log.setLevel(logging.INFO)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    fp32_path, int8_path = args.out_dir / "model.onnx", args.out_dir / "model.int8.onnx"
    x_train, y_train, x_test, y_test = digits_split()

    # 1. train (a few seconds) and export with the chosen torch exporter
    model = train(SmallCNN(), x_train, y_train)
    dynamo = args.exporter == "dynamo"
    opset = args.opset or (18 if dynamo else 17)
    export(model, torch.from_numpy(x_train[:2]), fp32_path, dynamo=dynamo, opset=opset, input_names=["input"])

    # 2. calibration data: any iterable of {input name: array}; an .npz works with the CLI too
    calib = x_train[:CALIB_SAMPLES]
    np.savez(args.out_dir / "calib.npz", input=calib)
    batches = [{"input": calib[i : i + 32]} for i in range(0, len(calib), 32)]

    # 3. quantize: prepare -> calibrate -> convert, then save
    prepared = onnxq.prepare(fp32_path, args.qconfig)
    prepared.calibrate(batches)
    onnxq.save_model(prepared.convert(), int8_path)
    log.info("%s", prepared.report)

    # 4. check under onnxruntime
    fp32_pred, int8_pred = predict(fp32_path, x_test), predict(int8_path, x_test)
    fp32_mb, int8_mb = fp32_path.stat().st_size / 2**20, int8_path.stat().st_size / 2**20
    log.info("fp32 top-1 %.1f%%, int8 top-1 %.1f%%, agreement %.1f%% on %d held-out digits",
             100 * (fp32_pred == y_test).mean(), 100 * (int8_pred == y_test).mean(),
             100 * (fp32_pred == int8_pred).mean(), len(y_test))  # fmt: skip
    log.info("size: fp32 %.2f MB, int8 %.2f MB (%.2fx)", fp32_mb, int8_mb, int8_mb / fp32_mb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
