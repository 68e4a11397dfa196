"""Session fixtures for the end-to-end tests: the digits data, trained models, fp32 ONNX exports.

Each model is trained once per session (fixed seeds, CPU, a few seconds) and each export is made
once and cached in a session temporary directory.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import pytest

try:
    import torch
    from sklearn import datasets as sklearn_datasets
except ImportError:  # the torch / dev extras are not installed: nothing here can run
    collect_ignore_glob = ["test_*.py"]


def _load_models_module() -> ModuleType:
    """models.py, loaded by path: the tests tree has no packages and "models" is a common name."""
    name = "onnxq_e2e_digits_models"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("models.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


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


@dataclass(frozen=True)
class Export:
    model_name: str
    dynamo: bool
    opset: int
    keep_batchnorm: bool
    path: Path
    proto: onnx.ModelProto
    torch_logits: np.ndarray  # the torch model's outputs on Digits.x_test

    @property
    def label(self) -> str:
        bn = "-bn" if self.keep_batchnorm else ""
        return f"{self.model_name}-{'dynamo' if self.dynamo else 'torchscript'}-opset{self.opset}{bn}"


def load_digits() -> Digits:
    data = sklearn_datasets.load_digits()
    x = (data.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = data.target.astype(np.int64)
    perm = np.random.default_rng(SEED).permutation(len(x))
    test, train = perm[:TEST_SIZE], perm[TEST_SIZE:]
    return Digits(x[train], y[train], x[test], y[test])


@pytest.fixture(scope="session")
def digits() -> Digits:
    return load_digits()


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
    model = _load_models_module().MODELS[model_name]()
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
    sched: torch.optim.lr_scheduler.LRScheduler,
    epochs: int,
    batch: int,
) -> None:
    """``epochs`` passes of cross-entropy minibatch steps over ``(x, y)`` in a seeded random order
    (the fp32 recipe here and the QAT fine-tuning of ``scripts/bench_qat.py``)."""
    gen = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()


@pytest.fixture(scope="session")
def trained(digits: Digits) -> Callable[[str], torch.nn.Module]:
    """``trained(name)``: the model trained once per session."""
    cache: dict[str, torch.nn.Module] = {}

    def get(name: str) -> torch.nn.Module:
        if name not in cache:
            cache[name] = train(name, digits)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def exported(
    trained: Callable[[str], torch.nn.Module], digits: Digits, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Export]]:
    """``exported(model_name, dynamo, opset, keep_batchnorm=False)``: the fp32 export, made once."""
    from onnxq.torch import export

    root = tmp_path_factory.mktemp("digits-exports")
    cache: dict[tuple[str, bool, int, bool], Export] = {}

    def get(model_name: str, dynamo: bool, opset: int, keep_batchnorm: bool = False) -> Export:
        key = (model_name, dynamo, opset, keep_batchnorm)
        if key not in cache:
            module = trained(model_name)
            with torch.no_grad():
                logits = module(torch.from_numpy(digits.x_test)).numpy()
            example = torch.from_numpy(digits.x_train[:2])
            path = root / f"{model_name}-{int(dynamo)}-{opset}-{int(keep_batchnorm)}.onnx"
            proto = export(
                module,
                example,
                path,
                dynamo=dynamo,
                opset=opset,
                input_names=[INPUT_NAME],
                output_names=["logits"],
                keep_batchnorm=keep_batchnorm,
            )
            cache[key] = Export(model_name, dynamo, opset, keep_batchnorm, path, proto, logits)
        return cache[key]

    yield get
