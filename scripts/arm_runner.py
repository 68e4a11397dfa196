"""Run a work directory's models on one machine: onnxruntime and numpy only, no onnxq.

scripts/arm_check.sh runs this file under qemu with an arm64 Python, onnxruntime's aarch64 build
and onnxq's custom-op library cross-built for aarch64, and on x86 with the same onnxruntime
release; ``scripts/arm_models.py`` writes the work directory before and compares the results
after. So the only things that change between two runs are the machine and the library.

The work directory holds ``manifest.json`` (``{"models": [{"name", "inputs", "files": {kind:
file}}]}``) and each model's inputs (``.npz``, keys ``"<run>/<input name>"``). For each model and
kind (``onnxq``: lowered to onnxq's ops, run with the library registered; ``qdq``: the portable
QDQ file on onnxruntime's own kernels), every run's outputs go to ``OUT/<name>.<kind>.npz`` (keys
``"<run>/<output index>"``), one intra-op thread. ``OUT/info.json`` records the machine, the
versions, the ISA the library chose and, with ``--count N``, executed instructions per run.

``--count N``: run each model N more times between two marks of the qemu plugin
``scripts/qemu_insn_count.c`` (loaded with ``out=COUNTS``) and record the instructions per run, in
total and inside the library's code (region 0) and onnxruntime's (region 1).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

FD_MARK, FD_START, FD_END = -7301, -7302, -7303


def _lseek(fd: int, offset: int, whence: int) -> None:
    with contextlib.suppress(OSError):  # expected: no such descriptor; the plugin saw the call
        os.lseek(fd, offset, whence)


def code_range(path: str) -> tuple[int, int] | None:
    """The lowest and highest address of ``path``'s executable mappings in this process."""
    real = os.path.realpath(path)
    spans = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and "x" in fields[1] and os.path.realpath(fields[5]) == real:
                lo, hi = (int(v, 16) for v in fields[0].split("-"))
                spans.append((lo, hi))
    return (min(s[0] for s in spans), max(s[1] for s in spans)) if spans else None


class Counter:
    """Reads the instruction counts the qemu plugin appends to ``path`` at each mark."""

    def __init__(self, path: Path, regions: list[str]) -> None:
        self.path, self.seq = path, 0
        for index, library in enumerate(regions):
            span = code_range(library)
            if span is None:
                raise SystemExit(f"arm_runner: {library} is not mapped in this process")
            _lseek(FD_START, span[0], index)
            _lseek(FD_END, span[1], index)

    def mark(self) -> list[int]:
        self.seq += 1
        _lseek(FD_MARK, self.seq, 0)
        for line in reversed(self.path.read_text().splitlines()):
            fields = [int(v) for v in line.split()]
            if fields[0] == self.seq:
                return fields[1:]
        raise SystemExit(f"arm_runner: mark {self.seq} not in {self.path}: is the qemu plugin loaded?")


def library_isa(library: str) -> str:
    lib = ctypes.CDLL(library)
    lib.onnxq_isa_name.restype = ctypes.c_char_p
    return lib.onnxq_isa_name(lib.onnxq_isa_active()).decode()


def session(path: Path, library: str | None) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    if library is not None:
        opts.register_custom_ops_library(library)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def feeds_of(npz: np.lib.npyio.NpzFile) -> list[dict[str, np.ndarray]]:
    runs: dict[int, dict[str, np.ndarray]] = {}
    for key in npz.files:
        run, name = key.split("/", 1)
        runs.setdefault(int(run), {})[name] = npz[key]
    return [runs[i] for i in sorted(runs)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="work directory (manifest.json)")
    parser.add_argument("--library", required=True, help="onnxq's custom-op library for this machine")
    parser.add_argument("--out", type=Path, required=True, help="directory for the outputs")
    parser.add_argument("--count", type=int, default=0, help="runs between instruction-count marks")
    parser.add_argument("--counts-file", type=Path, help="the qemu plugin's out= file (with --count)")
    parser.add_argument("--only", nargs="*", help="model names to count (default: all)")
    args = parser.parse_args(argv)

    manifest = json.loads((args.work / "manifest.json").read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    ctypes.CDLL(args.library)  # mapped before the counter reads where it lies; nothing of it runs yet
    counter = None
    if args.count:
        if args.counts_file is None:
            parser.error("--count needs --counts-file")
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_native

        counter = Counter(args.counts_file, [args.library, ort_native.__file__])
    info: dict[str, object] = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "library_isa": library_isa(args.library),
        "instructions": {},
    }
    for entry in manifest["models"]:
        with np.load(args.work / entry["inputs"]) as npz:
            feeds = feeds_of(npz)
        for kind, file in entry["files"].items():
            sess = session(args.work / file, args.library if kind == "onnxq" else None)
            outputs = {}
            for run, feed in enumerate(feeds):
                for k, y in enumerate(sess.run(None, feed)):
                    outputs[f"{run}/{k}"] = y
            np.savez(args.out / f"{entry['name']}.{kind}.npz", **outputs)
            if counter is not None and (not args.only or entry["name"] in args.only):
                before = counter.mark()
                for _ in range(args.count):
                    sess.run(None, feeds[0])
                after = counter.mark()
                total, ours, ort_code = (
                    (a - b) // args.count for a, b in zip(after[:3], before[:3], strict=True)
                )
                info["instructions"][f"{entry['name']}.{kind}"] = {  # type: ignore[index]
                    "per_run": total,
                    "in_onnxq_library": ours,
                    "in_onnxruntime": ort_code,
                }
            print(f"arm_runner: {entry['name']}.{kind}: {len(feeds)} runs", file=sys.stderr)
    (args.out / "info.json").write_text(json.dumps(info, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
