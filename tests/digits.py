"""The 8x8 digits data and the training recipe shared by the end-to-end tests, the torch tests and
``scripts/bench_qat.py``: one split (fixed seed), one minibatch loop, one fp32 recipe per model of
:mod:`tests.e2e.models`.

Import it as ``tests.digits`` (the repository root on ``sys.path``, as ``python -m pytest`` has it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn import datasets as sklearn_datasets

from tests.e2e.models import MODELS

TEST_SIZE = 500
EPOCHS = {"resnet": 6, "mobilenetv2": 6, "mlp": 10, "lstm": 8, "gru": 8, "rnn": 8, "transformer": 8}
BATCH = 64
LEARNING_RATE = 3e-3
SEED = 0
CALIB_SAMPLES = 128
CALIB_BATCH = 32
INPUT_NAME = "input"


@dataclass(frozen=True)
class Digits:
    """sklearn's 8x8 digits, scaled to [0, 1], shaped N x 1 x 8 x 8, split with a fixed seed."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def calibration_batches(self) -> list[dict[str, np.ndarray]]:
        x = self.x_train[:CALIB_SAMPLES]
        return [{INPUT_NAME: x[i : i + CALIB_BATCH]} for i in range(0, len(x), CALIB_BATCH)]

    def augmented_test(self, copies: int, count: int = TEST_SIZE) -> tuple[np.ndarray, np.ndarray]:
        """A larger held-out set: the first ``count`` test digits, then ``copies`` perturbed copies
        of each (contrast times U(0.8, 1.2), pixel noise N(0, 0.1), clipped to [0, 1]; fixed seed),
        labels kept. Only 500 digits are held out, so one image is 0.2 points of top-1; the copies
        (on which the fp32 nets still score about 97%) make differences of a tenth of a point
        measurable. Pixel shifts are no use here: one pixel of an 8x8 digit halves fp32's top-1."""
        x, y = self.x_test[:count], self.y_test[:count]
        rng = np.random.default_rng(SEED + 1)
        copied = np.repeat(x, copies, axis=0)
        copied = copied * rng.uniform(0.8, 1.2, (len(copied), 1, 1, 1)) + rng.normal(0.0, 0.1, copied.shape)
        x_all = np.concatenate([x, np.clip(copied, 0.0, 1.0).astype(np.float32)])
        return x_all, np.concatenate([y, np.repeat(y, copies)])


def load_digits() -> Digits:
    data = sklearn_datasets.load_digits()
    x = (data.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = data.target.astype(np.int64)
    perm = np.random.default_rng(SEED).permutation(len(x))
    test, train = perm[:TEST_SIZE], perm[TEST_SIZE:]
    return Digits(x[train], y[train], x[test], y[test])


def train(model_name: str, digits: Digits, epochs: int | None = None) -> torch.nn.Module:
    """Train ``model_name`` on the digits training split (AdamW, one-cycle LR, fixed seeds).

    One torch thread: these models are small, and on a loaded 2-core machine two threads spend most
    of their time waiting for each other (measured 6x slower).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(model_name, digits, EPOCHS[model_name] if epochs is None else epochs)
    finally:
        torch.set_num_threads(threads)


def _train(model_name: str, digits: Digits, epochs: int) -> torch.nn.Module:
    torch.manual_seed(SEED)
    model = MODELS[model_name]()
    steps_per_epoch = (len(digits.x_train) + BATCH - 1) // BATCH
    opt = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=LEARNING_RATE, total_steps=epochs * steps_per_epoch
    )
    x, y = torch.from_numpy(digits.x_train), torch.from_numpy(digits.y_train)
    run_epochs(model, x, y, opt, sched, epochs, BATCH)
    return model.eval()


def run_epochs(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler | None,
    epochs: int,
    batch: int = BATCH,
    after_epoch: Callable[[int], None] | None = None,
) -> None:
    """``epochs`` passes of cross-entropy minibatch steps over ``(x, y)`` in a seeded random order
    (the fp32 recipe here, QAT fine-tuning in the torch tests and ``scripts/bench_qat.py``); the
    scheduler, if any, steps after every batch, ``after_epoch(number of epochs done)`` after every
    epoch."""
    gen = torch.Generator().manual_seed(SEED)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
        if after_epoch is not None:
            after_epoch(epoch + 1)
