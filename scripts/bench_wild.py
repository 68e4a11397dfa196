#!/usr/bin/env python
"""Accuracy on the wild corpus: onnxq's default next to onnxruntime's default and best settings and
NNCF, in one run, on the same calibration and held-out data.

The corpus is ``tests/e2e/wild.py`` (architectures people deploy, exported by torch, some
rewritten the way other exporters write graphs). For each model every tool quantizes from the same
calibration batches; each output of each quantized model is compared with fp32 on held-out inputs:

- **SQNR** (dB, higher is better), the worst over the model's outputs;
- **agreement**: the share of held-out samples whose arg-max over the last axis matches fp32's
  (for classifier-like outputs; reported for the first output).

Tools:

- ``onnxq``: ``onnxq.quantize_static`` with no qconfig (the ``portable`` target);
- ``onnxq-x86``: onnxq with PyTorch's ``x86`` preset (onnxq's default before targets);
- ``ort-default``: ``onnxruntime.quantization.quantize_static`` with its default arguments;
- ``ort-best``: the best of onnxruntime's per-channel MinMax / Percentile / Entropy settings;
- ``nncf``: ``nncf.quantize`` (ONNX backend), when NNCF is installed in this environment
  (``pip install nncf``; it is never a dependency of onnxq).

The floor the wild-models issue sets: onnxq's default at least as good as onnxruntime's default on
every model, to within :data:`TOLERANCE_DB` (the SQNR of one held-out set moves by about that
much between two equally good quantizations); the verdict says so, and the exit status is 1
otherwise.

Usage::

    python scripts/bench_wild.py [--models resnet50,yolo] [--calib 64] [--held-out 32]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from accuracy_peers import nncf_available, nncf_quantize, ort_quantize, ort_settings

REPO = Path(__file__).resolve().parent.parent
TOLERANCE_DB = 0.1


def _wild() -> Any:
    spec = importlib.util.spec_from_file_location("onnxq_wild_corpus", REPO / "tests" / "e2e" / "wild.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["onnxq_wild_corpus"] = module
    spec.loader.exec_module(module)
    return module


VARIANTS = {
    "resnet50": ("torchscript", 17, None),
    "mobilenetv3": ("torchscript", 17, None),
    "efficientnet": ("dynamo", 18, None),
    "yolo": ("torchscript", 17, None),
    "crnn": ("torchscript", 17, None),
    "bert": ("dynamo", 18, None),
    "resnet50-minus-one": ("torchscript", 17, "minus_one_dims"),
    "yolo-constants": ("torchscript", 17, "weights_as_constants"),
    "mobilenetv3-nhwc": ("torchscript", 17, "nhwc_input"),
    "crnn-opset11": ("torchscript", 11, "old_opset"),
}


def _peers(
    fp32: onnx.ModelProto, path: Path, stem: Path, batches: list[dict[str, np.ndarray]]
) -> dict[str, Callable[[], onnx.ModelProto | Path | None]]:
    """The peers to run beside onnxq, each a call that returns its quantized model (or None)."""
    peers: dict[str, Callable[[], onnx.ModelProto | Path | None]] = {
        "ort-default": lambda: ort_quantize(path, stem.with_suffix(".ort.onnx"), batches)
    }
    for label, kwargs in ort_settings().items():
        out = stem.with_suffix(f".{label.replace(' ', '-')}.onnx")
        peers[f"ort {label}"] = lambda out=out, kwargs=kwargs: ort_quantize(path, out, batches, **kwargs)
    if nncf_available():
        peers["nncf"] = lambda: nncf_quantize(fp32, batches)
    return peers


def _score(
    reference: list[np.ndarray], got: list[np.ndarray], sqnr_db: Callable[..., float]
) -> tuple[float, float]:
    worst = min(sqnr_db(r, g) for r, g in zip(reference, got, strict=True))
    ref0, got0 = reference[0], got[0]
    agree = float(
        np.mean(ref0.reshape(-1, ref0.shape[-1]).argmax(-1) == got0.reshape(-1, got0.shape[-1]).argmax(-1))
    )
    return worst, agree


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(VARIANTS), help="comma-separated corpus entries")
    parser.add_argument("--calib", type=int, default=64, help="calibration samples (default 64)")
    parser.add_argument("--held-out", type=int, default=256, help="held-out samples (default 256)")
    args = parser.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown models {unknown} (known: {', '.join(VARIANTS)})")
    logging.disable(logging.WARNING)  # onnxruntime's quantizer and NNCF log advice on the root logger
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)

    import onnxq
    from onnxq.runtime import make_session

    wild = _wild()
    rows: list[tuple[str, dict[str, tuple[float, float]], str]] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="onnxq-bench-accuracy-") as tmp_dir:
        tmp = Path(tmp_dir)
        for name in names:
            exporter, opset, rewrite = VARIANTS[name]
            case_name = name.split("-")[0]
            case = wild.CASES[case_name]
            fp32 = wild.export(case, exporter, opset, initializers_as_inputs=rewrite == "old_opset")
            if rewrite in wild.REWRITES:
                fp32 = wild.REWRITES[rewrite](fp32)
            path = tmp / f"{name}.onnx"
            onnx.save(fp32, str(path))

            def data(n: int, seed: int, rewrite: str | None = rewrite, case: Any = case) -> np.ndarray:
                x = wild.make_inputs(case, n, seed)
                return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if rewrite == "nhwc_input" else x

            x = data(args.calib, 1)
            batches = [{"input": x[i : i + 8]} for i in range(0, len(x), 8)]
            held = {"input": data(args.held_out, 2)}
            reference = make_session(path).run(None, held)

            def score(
                model: onnx.ModelProto | Path,
                reference: list[np.ndarray] = reference,
                held: dict[str, np.ndarray] = held,
            ) -> tuple[float, float]:
                return _score(reference, make_session(model).run(None, held), wild.sqnr_db)  # fmt: skip

            results = {
                "onnxq": score(onnxq.quantize_static(fp32, batches, progress=False)),
                "onnxq-x86": score(onnxq.quantize_static(fp32, batches, "x86", progress=False)),
            }
            peers = _peers(fp32, path, tmp / name, batches)
            for tool, make in peers.items():
                try:
                    model = make()
                    if model is not None:
                        results[tool] = score(model)
                except Exception as e:  # a peer refuses or breaks some graphs: the row says so
                    print(f"  {name}: {tool} failed: {str(e).splitlines()[0][:120]}", file=sys.stderr)
            settings = [t for t in results if t.startswith("ort per-channel")]
            best_label = max(settings, key=lambda t: results[t][0], default="")
            if best_label:
                results["ort-best"] = results[best_label]
            rows.append((name, results, best_label))
            print(f"  {name}: done ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)

    tools = ["onnxq", "onnxq-x86", "ort-default", "ort-best", "nncf"]
    header = f"{'model':20s}" + "".join(f"{t:>16s}" for t in tools) + "   ort-best setting"
    print("\noutput SQNR, dB (worst output) / arg-max agreement with fp32, held-out data\n")
    print(header)
    print("-" * len(header))
    lost = []
    for name, results, best_label in rows:
        cells = [
            f"{results[t][0]:7.1f} / {100 * results[t][1]:5.1f}%" if t in results else f"{'-':>15s}"
            for t in tools
        ]
        print(f"{name:20s}" + "".join(f"{c:>16s}" for c in cells) + f"   {best_label[4:] or '-'}")
        if "ort-default" in results and results["onnxq"][0] < results["ort-default"][0] - TOLERANCE_DB:
            lost.append(name)
    print("\nverdict:", f"onnxq's default is below onnxruntime's on {lost}" if lost
          else f"onnxq's default is at least as good as onnxruntime's default on every model "
               f"(within {TOLERANCE_DB} dB)")  # fmt: skip
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
