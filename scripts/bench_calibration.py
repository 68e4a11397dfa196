#!/usr/bin/env python
"""Benchmark calibration: onnxq's observers next to onnxruntime's calibrators, time and memory.

The model is the ResNet-18 of ``bench_quantize.py`` (random weights, BatchNorm statistics from a
few random batches) at 224x224, exported once. The data are ``--samples`` (default 32, 128 and
512) random images in ``.npz`` files of 32 samples. Each run calibrates the model on N samples in
a fresh subprocess, so that run's own peak resident memory is measured (``os.wait4``), and
computes the ranges:

- onnxq: ``prepare`` with every activation observed by the method's observer (``histogram``,
  ``entropy``, ``percentile``, ``mse``, ``minmax``), ``calibrate`` on the ``.npz`` directory under
  ``--max-memory``, then each tensor group's parameters (``resolve_qparams``);
- onnxruntime: ``create_calibrator`` with the method (``Entropy``, ``Percentile``, ``MinMax``),
  ``collect_data`` from a reader over the same files, ``compute_data``. Its histogram calibrators
  keep every activation of every sample, so above ``--ort-max-samples`` (default 128: 512 would
  need about 16 GB) Entropy and Percentile are skipped and the table says so (MinMax always runs).

Runs are interleaved (the tools' order alternating per repeat); medians are printed with the
ratios onnxq / onnxruntime for the methods both have, and the issue's floors are checked: onnxq's
peak at the largest N within 1.2x its peak at the smallest, onnxq Entropy at 128 samples at
least 5x faster than onnxruntime's, every onnxq run within the memory budget it was given.

Usage::

    python scripts/bench_calibration.py                       # 32, 128, 512 samples, 1 repeat
    python scripts/bench_calibration.py --samples 32 128 --repeats 3 --max-memory 2GB
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_quantize import IMAGE_SIZE, INPUT_NAME, _child_env

FILE_SAMPLES = 32
CALIB_BATCH = 8
OURS = ("histogram", "entropy", "percentile", "mse", "minmax")
THEIRS = {"entropy": "Entropy", "percentile": "Percentile", "minmax": "MinMax"}


def make_inputs(workdir: Path, counts: list[int]) -> Path:
    """Export the model and write max(counts) samples as .npz files; a directory per count holds
    links to the first count / 32 files."""
    import numpy as np
    from bench_quantize import export_resnet18

    model_path = export_resnet18(workdir, "torchscript")
    rng = np.random.default_rng(0)
    files = workdir / "files"
    files.mkdir()
    for i in range(max(counts) // FILE_SAMPLES):
        x = rng.standard_normal((FILE_SAMPLES, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
        np.savez(files / f"part{i:03d}.npz", **{INPUT_NAME: x})
    for n in counts:
        d = workdir / f"n{n}"
        d.mkdir()
        for i in range(n // FILE_SAMPLES):
            os.link(files / f"part{i:03d}.npz", d / f"part{i:03d}.npz")
    return model_path


# ----------------------------------------------------------------------------- one run (child)


def run_onnxq(method: str, model_path: Path, data_dir: Path, max_memory: str) -> int:
    import onnxq
    from onnxq.calibration.resolve import resolve_qparams
    from onnxq.calibration.sources import load_calibration_data
    from onnxq.qconfig import QConfig, QSpec

    qconfig = QConfig(activation=QSpec("uint8", observer=method), weight=QSpec("int8", symmetric=True))
    prepared = onnxq.prepare(model_path, qconfig)
    result = prepared.calibrate(load_calibration_data(data_dir), progress=False, max_memory=max_memory)
    return len(resolve_qparams(prepared.plan, prepared.model, result).groups)


def file_batches(data_dir: Path) -> Any:
    """The samples of ``data_dir``'s .npz files in batches of CALIB_BATCH, one file read at a time."""
    import numpy as np

    for f in sorted(data_dir.glob("*.npz")):
        with np.load(f) as z:
            x = z[INPUT_NAME]
        for i in range(0, len(x), CALIB_BATCH):
            yield {INPUT_NAME: x[i : i + CALIB_BATCH]}


def run_inference(model_path: Path, data_dir: Path) -> int:
    """Plain fp32 inference over the same data: the least any calibration costs (the model runs)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    for batch in file_batches(data_dir):
        session.run(None, batch)
    return 0


def run_onnxruntime(method: str, model_path: Path, data_dir: Path, workdir: Path) -> int:
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, create_calibrator

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = file_batches(data_dir)

        def get_next(self) -> dict[str, Any] | None:
            return next(self._batches, None)

    calibrator = create_calibrator(
        model_path,
        op_types_to_calibrate=None,
        augmented_model_path=str(workdir / f"augmented-{os.getpid()}.onnx"),
        calibrate_method=getattr(CalibrationMethod, THEIRS[method]),
        use_external_data_format=False,
    )
    calibrator.collect_data(Reader())
    ranges = calibrator.compute_data()
    return len(getattr(ranges, "data", ranges))


def child_main(tool: str, method: str, model_path: Path, data_dir: Path, extra: str) -> None:
    import logging

    logging.disable(logging.WARNING)
    if tool in ("onnxruntime", "inference"):
        import onnxruntime.quantization  # noqa: F401
    else:
        import onnxq.api
        import onnxq.calibration.engine  # noqa: F401
    start = time.perf_counter()
    if tool == "inference":
        tensors = run_inference(model_path, data_dir)
    elif tool == "onnxruntime":
        tensors = run_onnxruntime(method, model_path, data_dir, Path(extra))
    else:
        tensors = run_onnxq(method, model_path, data_dir, extra)
    print(json.dumps({"seconds": time.perf_counter() - start, "tensors": tensors}))


# ----------------------------------------------------------------------------- driver (parent)


def run_child(tool: str, method: str, model: Path, data: Path, extra: str) -> dict[str, float]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        tool,
        method,
        str(model),
        str(data),
        extra,
    ]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=_child_env())
        _, status, usage = os.wait4(proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if code != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise SystemExit(f"{tool} {method} failed with status {code}:\n" + "\n".join(tail))
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    result["peak_mb"] = usage.ru_maxrss / 1024
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--max-memory", default="2GB", help="onnxq's --max-memory (default 2GB)")
    parser.add_argument("--ort-max-samples", type=int, default=128)
    parser.add_argument("--methods", nargs="+", default=list(OURS), choices=OURS)
    parser.add_argument("--keep-dir", type=Path)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--prepare", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        tool, method, model, data, extra = args.child
        child_main(tool, method, Path(model), Path(data), extra)
        return 0
    if args.prepare:
        print(
            json.dumps({"model": str(make_inputs(Path(args.prepare[0]), [int(n) for n in args.prepare[1:]]))})
        )
        return 0
    if any(n % FILE_SAMPLES or n < FILE_SAMPLES for n in args.samples):
        parser.error(f"--samples must be multiples of {FILE_SAMPLES}")
    workdir = args.keep_dir or Path(tempfile.mkdtemp(prefix="onnxq-bench-calib-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        return bench(workdir, args)
    finally:
        if args.keep_dir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def bench(workdir: Path, args: argparse.Namespace) -> int:
    from onnxq.calibration.budget import parse_memory

    budget_mb = parse_memory(args.max_memory) / 2**20
    cmd = [sys.executable, str(Path(__file__).resolve()), "--prepare", str(workdir), *map(str, args.samples)]
    proc = subprocess.run(cmd, capture_output=True, env=_child_env(), check=False)
    if proc.returncode != 0:
        raise SystemExit("export failed:\n" + proc.stderr.decode(errors="replace")[-2000:])
    model = Path(json.loads(proc.stdout.decode().strip().splitlines()[-1])["model"])
    print(
        f"ResNet-18 {IMAGE_SIZE}x{IMAGE_SIZE}; samples {args.samples}; onnxq --max-memory {args.max_memory}"
    )
    print(f"{args.repeats} repeat(s), each run in a fresh process, tools interleaved\n")
    runs: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    for r in range(args.repeats):
        for n in args.samples:
            res = run_child("inference", "none", model, workdir / f"n{n}", "")
            runs.setdefault(("inference", "none", n), []).append(res)
            print(f"  {n:4d} {'fp32 only':10s} {'onnxruntime':11s} {res['seconds']:7.1f} s", flush=True)
            for method in args.methods:
                tools = ["onnxq"]
                if method in THEIRS and (n <= args.ort_max_samples or method == "minmax"):
                    tools.append("onnxruntime")
                for tool in tools if r % 2 == 0 else tools[::-1]:
                    extra = args.max_memory if tool == "onnxq" else str(workdir)
                    res = run_child(tool, method, model, workdir / f"n{n}", extra)
                    runs.setdefault((tool, method, n), []).append(res)
                    print(
                        f"  {n:4d} {method:10s} {tool:11s} {res['seconds']:7.1f} s {res['peak_mb']:7.0f} MB",
                        flush=True,
                    )
    med = {
        k: (statistics.median(r["seconds"] for r in v), statistics.median(r["peak_mb"] for r in v))
        for k, v in runs.items()
    }
    print(
        f"\n{'samples':>7s} {'method':10s} {'onnxq s':>8s} {'MB':>6s} {'ort s':>8s} {'MB':>6s} "
        f"{'time x':>7s} {'mem x':>6s}"
    )
    for n in args.samples:
        print(f"{n:7d} {'fp32 only':10s} {'':>8s} {'':>6s} {med[('inference', 'none', n)][0]:8.1f}")
        for method in args.methods:
            s, m = med[("onnxq", method, n)]
            line = f"{n:7d} {method:10s} {s:8.1f} {m:6.0f}"
            if ("onnxruntime", method, n) in med:
                os_, om = med[("onnxruntime", method, n)]
                line += f" {os_:8.1f} {om:6.0f} {os_ / s:7.2f} {om / m:6.2f}"
            elif method in THEIRS:
                line += f" {'(skipped: over --ort-max-samples)':>30s}"
            print(line)
    print("(time x, mem x: onnxruntime / onnxq, medians; above 1 onnxq is faster / smaller)\n")
    ok = True
    lo, hi = min(args.samples), max(args.samples)
    for method in args.methods:
        growth = med[("onnxq", method, hi)][1] / med[("onnxq", method, lo)][1]
        verdict = "ok" if growth <= 1.2 else "FAIL"
        ok &= growth <= 1.2
        print(f"floor: onnxq {method} peak at {hi} / at {lo} samples = {growth:.2f} (<= 1.2: {verdict})")
    if ("onnxruntime", "entropy", 128) in med and ("onnxq", "entropy", 128) in med:
        speed = med[("onnxruntime", "entropy", 128)][0] / med[("onnxq", "entropy", 128)][0]
        ok &= speed >= 5
        print(
            f"floor: onnxq entropy at 128 samples {speed:.1f}x faster than onnxruntime's (>= 5: "
            f"{'ok' if speed >= 5 else 'FAIL'})"
        )
        # running the model is the least any calibration costs
        ceiling = med[("onnxruntime", "entropy", 128)][0] / med[("inference", "none", 128)][0]
        print(
            f"       (onnxruntime entropy / plain fp32 inference of the same samples = {ceiling:.1f}: "
            "the most any observer could gain here)"
        )
    worst = max(m for (tool, _, _), (_, m) in med.items() if tool == "onnxq")
    ok &= worst <= budget_mb
    print(
        f"floor: every onnxq run within --max-memory {budget_mb:.0f} MB (largest peak {worst:.0f} MB: "
        f"{'ok' if worst <= budget_mb else 'FAIL'})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
