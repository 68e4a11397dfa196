"""Session fixtures for the end-to-end tests: the digits data, trained models, fp32 ONNX exports.

Each model is trained once per session (fixed seeds, CPU, a few seconds) and each export is made
once and cached in a session temporary directory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest

try:
    import torch

    from tests.digits import INPUT_NAME, Digits, load_digits, train
except ImportError:  # the torch / dev extras are not installed: nothing here can run
    collect_ignore_glob = ["test_*.py"]


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


@pytest.fixture(scope="session")
def digits() -> Digits:
    return load_digits()


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
