"""Build the bundled demo assets in ``onnxq/data/``: a small digits CNN and its data.

Trains a ResNet-flavoured CNN (Conv-BN-ReLU stem, one residual block, MaxPool, Conv-BN-ReLU6,
global average pool, Linear) on the handwritten digits set that ships with scikit-learn, exports
it to ONNX, and writes three files the ``onnxq demo`` command reads without torch or sklearn:

* ``digits_cnn.onnx``  -- the fp32 model, input ``input`` float32 [N, 1, 8, 8] (pixels / 16),
  output ``logits`` [N, 10];
* ``digits_calib.npz`` -- calibration data: key ``input``, 64 training images;
* ``digits_eval.npz``  -- held-out evaluation data: ``images`` [360, 1, 8, 8], ``labels`` [360].

Needs the ``torch`` and ``dev`` extras. Deterministic for a given torch version (fixed seeds,
one thread). Usage::

    python scripts/make_demo_assets.py [--out onnxq/data] [--epochs 40]
"""

from __future__ import annotations

import argparse
import io
import logging
from pathlib import Path

import numpy as np
import onnx
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

logger = logging.getLogger("make_demo_assets")

SEED = 0
NUM_EVAL = 360
NUM_CALIB = 64
OPSET = 17


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + x)


class DigitsCNN(nn.Module):
    """About 60 k parameters: big enough for int8 to matter, small enough to ship."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.block = ResidualBlock(width)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Sequential(
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU6()
        )
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.block(self.stem(x)))
        x = self.gap(self.head(x))
        return self.fc(torch.flatten(x, 1))


def load_splits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits as float32 [N, 1, 8, 8] in [0, 1]; a stratified held-out split of NUM_EVAL images."""
    digits = load_digits()
    images = (digits.images.astype(np.float32) / 16.0)[:, None, :, :]
    labels = digits.target.astype(np.int64)
    x_tr, x_ev, y_tr, y_ev = train_test_split(
        images, labels, test_size=NUM_EVAL, random_state=SEED, stratify=labels
    )
    return x_tr, y_tr, x_ev, y_ev


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int) -> None:
    gen = torch.Generator().manual_seed(SEED)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), 64):
            idx = perm[i : i + 64]
            # small random shifts: the eval set is clean, this only regularises
            batch = torch.roll(
                xt[idx], shifts=tuple(torch.randint(-1, 2, (2,), generator=gen).tolist()), dims=(2, 3)
            )
            loss = nn.functional.cross_entropy(model(batch), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        logger.info("epoch %d loss %.4f", epoch, total / len(xt))
    model.eval()


def export(model: nn.Module, example: torch.Tensor) -> onnx.ModelProto:
    """TorchScript exporter: its graph is the plain Conv/Relu/Add/.../Gemm chain a reader expects
    in a demo (the dynamo exporter lowers the flatten and pooling to shape arithmetic)."""
    buf = io.BytesIO()
    torch.onnx.export(
        model,
        (example,),
        buf,
        dynamo=False,
        opset_version=OPSET,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    proto = onnx.load_from_string(buf.getvalue())
    proto.producer_name = "onnxq-demo"
    onnx.checker.check_model(proto, full_check=True)
    return proto


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "onnxq" / "data")
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    x_tr, y_tr, x_ev, y_ev = load_splits()
    model = DigitsCNN()
    train(model, x_tr, y_tr, args.epochs)
    with torch.no_grad():
        acc = float((model(torch.from_numpy(x_ev)).argmax(1).numpy() == y_ev).mean())
    logger.info("fp32 torch accuracy on %d held-out digits: %.2f%%", len(y_ev), 100 * acc)

    proto = export(model, torch.from_numpy(x_ev[:2]))
    calib = x_tr[np.random.default_rng(SEED).choice(len(x_tr), NUM_CALIB, replace=False)]
    args.out.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, args.out / "digits_cnn.onnx")
    np.savez_compressed(args.out / "digits_calib.npz", input=calib)
    np.savez_compressed(args.out / "digits_eval.npz", images=x_ev, labels=y_ev)
    for name in ("digits_cnn.onnx", "digits_calib.npz", "digits_eval.npz"):
        logger.info("wrote %s (%d bytes)", name, (args.out / name).stat().st_size)


if __name__ == "__main__":
    main()
