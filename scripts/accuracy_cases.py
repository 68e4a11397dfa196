"""The models of ``scripts/bench_accuracy.py``: the in-project zoo and the hard cases.

Each :class:`Case` holds the fp32 model, calibration batches, held-out feeds (with labels where
the model was trained on them), the onnxq QConfigMapping to quantize with (None: the default
target) and whether the peers must use per-tensor weights too.

- ``digits-*``: the end-to-end tests' digits nets (``tests/e2e/models.py``), trained with their
  recipe (fixed seeds, one torch thread), exported by TorchScript at opset 17; 128 training
  images calibrate; the 500 held-out images and ``copies`` perturbed copies of each
  (``tests.digits.Digits.augmented_test``: contrast and pixel noise, labels kept; 5500 images by
  default) measure. 500 alone cannot tell tools apart: one image is 0.2 points.
- ``zoo-*``: the modules of ``tests/e2e/test_zoo.py`` (random weights), 32 random calibration
  batches, 16 held-out ones.
- hard cases: ``hard-mbv2-pt``: the digits MobileNetV2 with per-tensor weights for every tool;
  ``hard-dwblock-pt``: ``tests/ptq_models.mobilenet_block_module`` (depthwise channels whose
  ranges differ up to 1000x, the float function unchanged), per-tensor; ``hard-ln-outliers``: the
  LayerNorm -> MatMul block of ``tests/passes/test_smooth_quant.py`` whose LayerNorm output has
  three channels 100x the others, int8 activations per tensor.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' modules (tests.digits, tests.ptq_models...) as a package


@dataclass(frozen=True)
class Case:
    name: str
    model: onnx.ModelProto
    calib: list[dict[str, np.ndarray]]
    held: list[dict[str, np.ndarray]]
    labels: np.ndarray | None = None
    mapping: Any = None  # an onnxq QConfigMapping; None: the default target
    per_channel: bool = True  # the peers' weights
    hard: bool = False
    #: The mapping the algorithms run on when the default keeps activations float (a transformer):
    #: the default target's QConfig given explicitly, so activations are int8 as the peers' are.
    int8_mapping: Any = None


def _per_tensor() -> Any:
    from onnxq.targets import target_mapping

    return target_mapping().with_overrides(per_channel=False)


def _int8_everywhere() -> Any:
    """The default target's QConfig as an explicit qconfig: a transformer keeps int8 activations."""
    from onnxq.targets import target_mapping

    return target_mapping()


def digits_cases(names: list[str], held_out: int, copies: int) -> list[Case]:
    import torch

    from onnxq.torch import export

    conf = importlib.import_module("tests.digits")  # the digits split and training recipe
    digits = conf.load_digits()
    calib = digits.calibration_batches()
    x, y = digits.augmented_test(copies, held_out)
    held = [{conf.INPUT_NAME: x[i : i + 500]} for i in range(0, len(x), 500)]
    cases, trained = [], {}
    for name in names:
        model_name = {"mbv2": "mobilenetv2"}.get(name.split("-")[1], name.split("-")[1])
        if model_name not in trained:
            trained[model_name] = conf.train(model_name, digits)
        module = trained[model_name]
        proto = export(module, torch.from_numpy(digits.x_train[:2]), None, dynamo=False, opset=17,
                       input_names=[conf.INPUT_NAME], output_names=["logits"])  # fmt: skip
        if name == "hard-mbv2-pt":
            cases.append(Case(name, proto, calib, held, y, _per_tensor(), per_channel=False, hard=True))
        elif model_name == "transformer":
            cases.append(Case(name, proto, calib, held, y, int8_mapping=_int8_everywhere()))
        else:
            cases.append(Case(name, proto, calib, held, y))
    return cases


def zoo_case(name: str) -> Case:
    import torch

    from tests.conftest import export_torch_module

    zoo = importlib.import_module("tests.e2e.test_zoo")
    case = zoo.CASES[name.removeprefix("zoo-")]
    torch.manual_seed(0)
    examples = tuple(torch.randn(*s) for s in case.shapes)
    proto = export_torch_module(case.make(), examples, "torchscript", 17)
    int8 = _int8_everywhere() if name == "zoo-encoder" else None
    return Case(name, proto, zoo._batches(proto, case, 32, seed=1), zoo._batches(proto, case, 16, seed=2),
                int8_mapping=int8)  # fmt: skip


def dwblock_case() -> Case:
    ptq = importlib.import_module("tests.ptq_models")
    proto, calib, held = ptq.mobilenet_case()
    name = proto.graph.input[0].name
    return Case("hard-dwblock-pt", proto, calib, [{name: held[i : i + 1]} for i in range(len(held))],
                mapping=_per_tensor(), per_channel=False, hard=True)  # fmt: skip


def ln_outliers_case() -> Case:
    sq = importlib.import_module("tests.passes.test_smooth_quant")
    rng = np.random.default_rng(4)
    calib = [{"x": rng.standard_normal((1, sq.T, sq.D)).astype(np.float32)} for _ in range(32)]
    held = [{"x": rng.standard_normal((8, sq.T, sq.D)).astype(np.float32)} for _ in range(4)]
    return Case("hard-ln-outliers", sq.encoder_block(), calib, held, mapping=_int8_everywhere(), hard=True)


ZOO = ("encoder", "squeeze_excite", "unet", "depthwise_hardswish", "two_in_two_out", "dynamic_batch",
       "lstm", "gru", "conv1d")  # fmt: skip
DIGITS = ("digits-resnet", "digits-mbv2", "digits-mlp", "digits-transformer", "hard-mbv2-pt")
BUILDERS: dict[str, Callable[[], Case]] = {
    **{f"zoo-{z}": (lambda z=z: zoo_case(f"zoo-{z}")) for z in ZOO},
    "hard-dwblock-pt": dwblock_case,
    "hard-ln-outliers": ln_outliers_case,
}
ALL = (*DIGITS, *BUILDERS)


def build(names: list[str], held_out: int = 500, copies: int = 10) -> list[Case]:
    """The cases named, in that order (the digits nets trained once each); ``held_out`` test digits
    and ``copies`` perturbed copies of each measure the digits nets."""
    digits = {c.name: c for c in digits_cases([n for n in names if n in DIGITS], held_out, copies)}
    return [digits[n] if n in digits else BUILDERS[n]() for n in names]


__all__ = ["ALL", "Case", "build"]
