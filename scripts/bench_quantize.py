#!/usr/bin/env python
"""Benchmark the whole static-quantization pipeline: onnxq next to onnxruntime.quantization.

The model is a ResNet-18 (built here in torch, random weights with BatchNorm statistics calibrated
on a few random batches) at 224x224, exported once. Each run quantizes it end to end - load,
calibrate on 32 samples, convert, save - in a fresh subprocess, so the peak resident memory of
that run alone is measured (``os.wait4`` returns the child's own ``ru_maxrss``; the export runs in
a subprocess too, because Linux carries the parent's high-water mark at fork into the child). Runs
are interleaved (ours / theirs, the order alternating per repeat); medians are printed with ratios.

Two comparisons:

- equal settings: both MinMax, per-tensor int8 symmetric weights, uint8 asymmetric activations;
- defaults: onnxq's ``x86`` preset (histogram activations with reduce_range, per-channel weights)
  next to ``onnxruntime.quantization.quantize_static`` with its default arguments.

With ``--baseline DIR`` (another onnxq source tree, its kernels built in place, e.g. a
``git worktree`` of an older commit after ``python setup.py build_ext --inplace``) that version
runs too, as a third tool in the same interleaved loop, and the onnxq / baseline ratios are
printed: the check that a change made nothing slower.

Usage::

    python scripts/bench_quantize.py                 # 5 repeats, temporary work directory
    python scripts/bench_quantize.py --repeats 3 --exporter dynamo --keep-dir bench-out
    python scripts/bench_quantize.py --baseline ../onnxq-main
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

NUM_SAMPLES = 32
CALIB_BATCH = 8
IMAGE_SIZE = 224
INPUT_NAME = "input"
CONFIGS = ("equal", "default")
TOOLS = ("onnxq", "onnxruntime")


# ----------------------------------------------------------------------------- model and data


def build_resnet18() -> Any:
    """ResNet-18 (basic blocks, [2, 2, 2, 2], 64-512 channels, 1000 classes), torch only."""
    import torch
    from torch import nn

    def conv_bn(cin: int, cout: int, kernel: int, stride: int) -> list[nn.Module]:
        conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)
        return [conv, nn.BatchNorm2d(cout)]

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.body = nn.Sequential(*conv_bn(cin, cout, 3, stride), nn.ReLU(), *conv_bn(cout, cout, 3, 1))
            down = stride != 1 or cin != cout
            self.shortcut = nn.Sequential(*conv_bn(cin, cout, 1, stride)) if down else nn.Identity()
            self.relu = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.relu(self.body(x) + self.shortcut(x))

    class ResNet18(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(*conv_bn(3, 64, 7, 2), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
            widths = (64, 128, 256, 512)
            blocks: list[nn.Module] = []
            cin = 64
            for i, w in enumerate(widths):
                blocks += [Block(cin, w, 1 if i == 0 else 2), Block(w, w, 1)]
                cin = w
            self.blocks = nn.Sequential(*blocks)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512, 1000)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))

    return ResNet18()


def export_resnet18(workdir: Path, exporter: str) -> Path:
    """The ResNet-18 with BatchNorm statistics from a few random batches (so activations stay
    sane), exported to ``workdir/resnet18.onnx`` with a dynamic batch."""
    import torch

    from onnxq.torch import export

    torch.manual_seed(0)
    model = build_resnet18()
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 3, IMAGE_SIZE, IMAGE_SIZE))
    model.eval()
    model_path = workdir / "resnet18.onnx"
    export(
        model,
        torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE),
        model_path,
        dynamo=exporter == "dynamo",
        opset=18 if exporter == "dynamo" else 17,
        input_names=[INPUT_NAME],
        output_names=["logits"],
    )
    return model_path


def make_inputs(workdir: Path, exporter: str) -> tuple[Path, Path]:
    """Export the ResNet-18 and write the 32 calibration samples; return (model path, data path)."""
    import numpy as np

    model_path = export_resnet18(workdir, exporter)
    rng = np.random.default_rng(0)
    data = rng.standard_normal((NUM_SAMPLES, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    data_path = workdir / "calib.npz"
    np.savez(data_path, **{INPUT_NAME: data})
    return model_path, data_path


def load_batches(data_path: Path) -> list[dict[str, Any]]:
    import numpy as np

    with np.load(data_path) as npz:
        x = npz[INPUT_NAME]
    return [{INPUT_NAME: x[i : i + CALIB_BATCH]} for i in range(0, len(x), CALIB_BATCH)]


# ----------------------------------------------------------------------------- one run (child)


def run_onnxq(config: str, model_path: Path, data_path: Path, out_path: Path) -> None:
    import onnxq
    from onnxq.qconfig import QConfig, QSpec

    if config == "equal":
        qconfig: Any = QConfig(
            activation=QSpec("uint8", observer="minmax"),
            weight=QSpec("int8", symmetric=True, observer="minmax"),
        )
    else:
        qconfig = "x86"
    prepared = onnxq.prepare(model_path, qconfig)
    prepared.calibrate(load_batches(data_path), progress=False)
    onnxq.save_model(prepared.convert(), out_path)


def run_onnxruntime(config: str, model_path: Path, data_path: Path, out_path: Path) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(load_batches(data_path))

        def get_next(self) -> dict[str, Any] | None:
            return next(self._batches, None)

    if config == "equal":
        quantize_static(
            str(model_path),
            str(out_path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=False,
            reduce_range=False,
            calibrate_method=CalibrationMethod.MinMax,
        )
    else:
        quantize_static(str(model_path), str(out_path), Reader())


def child_main(tool: str, config: str, model_path: Path, data_path: Path, out_path: Path) -> None:
    """One timed run. Library imports happen before the clock starts, for both tools alike."""
    import logging

    logging.disable(logging.WARNING)  # onnxruntime's quantizer logs advice on the root logger
    if tool == "onnxruntime":
        import onnxruntime.quantization  # noqa: F401
    else:  # onnxq, or the baseline tree's onnxq (its PYTHONPATH comes first)
        import onnxq
        import onnxq.api  # noqa: F401
    runner = run_onnxruntime if tool == "onnxruntime" else run_onnxq
    start = time.perf_counter()
    runner(config, model_path, data_path, out_path)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "bytes": out_path.stat().st_size}))


# ----------------------------------------------------------------------------- driver (parent)


def _child_env(root: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    repo = str(root or Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH", "")) if p)
    return env


def prepare_inputs(workdir: Path, exporter: str) -> tuple[Path, Path]:
    """Export the model and write the data in a subprocess.

    The driver must stay small: a child's peak RSS counts the parent's memory at fork time (Linux
    keeps the high-water mark across exec), so torch must never be loaded in this process.
    """
    cmd = [sys.executable, str(Path(__file__).resolve()), "--prepare", str(workdir), exporter]
    proc = subprocess.run(cmd, capture_output=True, env=_child_env(), check=False)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise SystemExit(f"export failed with status {proc.returncode}:\n" + "\n".join(tail))
    paths = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    return Path(paths["model"]), Path(paths["data"])


def run_child(
    tool: str, config: str, model_path: Path, data_path: Path, out_path: Path, baseline: Path | None = None
) -> dict[str, float]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", tool, config]
    cmd += [str(model_path), str(data_path), str(out_path)]
    env = _child_env(baseline if tool == "baseline" else None)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (not all children's maximum)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise SystemExit(f"{tool} ({config}) failed with status {proc.returncode}:\n" + "\n".join(tail))
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports kilobytes
    return result


def sqnr_db(model_path: Path, quantized: dict[str, Path], data_path: Path) -> dict[str, float]:
    """Signal-to-quantization-noise ratio (dB) of each quantized model's logits against fp32's."""
    import numpy as np

    from onnxq.runtime import make_session

    x = np.concatenate([b[INPUT_NAME] for b in load_batches(data_path)])

    def logits(path: Path) -> np.ndarray:
        session = make_session(path)
        return session.run(None, {INPUT_NAME: x})[0].astype(np.float64)

    ref = logits(model_path)
    out = {}
    for name, path in quantized.items():
        noise = float(np.sum((logits(path) - ref) ** 2))
        out[name] = float(10 * np.log10(np.sum(ref**2) / noise)) if noise > 0 else float("inf")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per tool and setting (default 5)")
    parser.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript")
    parser.add_argument("--keep-dir", type=Path, help="work in this directory and keep the files")
    parser.add_argument("--baseline", type=Path, help="another onnxq source tree to run beside this one")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--prepare", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.prepare:
        model_path, data_path = make_inputs(Path(args.prepare[0]), args.prepare[1])
        print(json.dumps({"model": str(model_path), "data": str(data_path)}))
        return 0
    if args.child:
        tool, config, *paths = args.child
        child_main(tool, config, *(Path(p) for p in paths))
        return 0
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.baseline is not None and not (args.baseline / "onnxq" / "__init__.py").is_file():
        parser.error(f"--baseline {args.baseline}: not an onnxq source tree")

    workdir = args.keep_dir or Path(tempfile.mkdtemp(prefix="onnxq-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        return bench(workdir, args.repeats, args.exporter, args.baseline)
    finally:
        if args.keep_dir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def bench(workdir: Path, repeats: int, exporter: str, baseline: Path | None = None) -> int:
    start = time.perf_counter()
    model_path, data_path = prepare_inputs(workdir, exporter)
    fp32_mb = model_path.stat().st_size / 2**20
    print(
        f"ResNet-18 {IMAGE_SIZE}x{IMAGE_SIZE}, {exporter} export: {fp32_mb:.1f} MB "
        f"({time.perf_counter() - start:.1f} s); {NUM_SAMPLES} calibration samples, batches of {CALIB_BATCH}"
    )
    print(f"{repeats} repeats per tool and setting, each run in a fresh process, interleaved\n")

    tools = (*TOOLS, "baseline") if baseline is not None else TOOLS
    results: dict[tuple[str, str], list[dict[str, float]]] = {(t, c): [] for t in tools for c in CONFIGS}
    outputs = {(t, c): workdir / f"{t}-{c}.int8.onnx" for t in tools for c in CONFIGS}
    for r in range(repeats):
        for config in CONFIGS:
            order = tools if r % 2 == 0 else tools[::-1]
            for tool in order:
                res = run_child(tool, config, model_path, data_path, outputs[tool, config], baseline)
                results[tool, config].append(res)
                print(
                    f"  repeat {r + 1}/{repeats} {config:7s} {tool:11s} {res['seconds']:6.2f} s "
                    f"{res['peak_rss_mb']:7.0f} MB peak RSS",
                    flush=True,
                )

    sqnr = sqnr_db(model_path, {f"{t}-{c}": p for (t, c), p in outputs.items()}, data_path)
    print()
    header = f"{'setting':8s} {'tool':12s} {'time s':>8s} {'peak MB':>8s} {'size MB':>8s} {'SQNR dB':>8s}"
    print(header)
    print("-" * len(header))
    slower = False
    for config in CONFIGS:
        med: dict[str, tuple[float, float]] = {}
        for tool in tools:
            runs = results[tool, config]
            seconds = statistics.median(r["seconds"] for r in runs)
            rss = statistics.median(r["peak_rss_mb"] for r in runs)
            med[tool] = (seconds, rss)
            size = runs[-1]["bytes"] / 2**20
            db = sqnr[f"{tool}-{config}"]
            print(f"{config:8s} {tool:12s} {seconds:8.2f} {rss:8.0f} {size:8.2f} {db:8.1f}")
        t_ratio = med["onnxq"][0] / med["onnxruntime"][0]
        m_ratio = med["onnxq"][1] / med["onnxruntime"][1]
        print(f"{config:8s} {'ratio':12s} {t_ratio:8.2f} {m_ratio:8.2f}   (onnxq / onnxruntime, median)")
        if baseline is not None:
            b_time, b_rss = med["onnxq"][0] / med["baseline"][0], med["onnxq"][1] / med["baseline"][1]
            print(f"{config:8s} {'vs baseline':12s} {b_time:8.2f} {b_rss:8.2f}   (onnxq / baseline, median)")
        slower |= t_ratio > 1.0
    print(
        "\nverdict:",
        "onnxq is SLOWER than onnxruntime in at least one setting"
        if slower
        else "onnxq is not slower than onnxruntime in either setting",
    )
    return 1 if slower else 0


if __name__ == "__main__":
    sys.exit(main())
