"""Fuzz onnxq's loaders (and its kernel API) with atheris, and soak-test the CLI.

::

    python scripts/fuzz.py                      # every target for 20 s, then the soak check
    python scripts/fuzz.py --minutes 30         # every target for 30 minutes
    python scripts/fuzz.py --targets npz,model --seconds 60 --soak 0
    python scripts/fuzz.py --targets npz --replay fuzz-artifacts/npz-crash-*   # re-run found inputs

Each target (:mod:`fuzz_targets`: ``model``, ``npz``, ``qconfig``, ``stats``; and ``kernels``,
which is ``scripts/fuzz_kernels.py``) runs in its own process, started from its seeds with a fresh
temporary directory, so that a native crash, a hang (libFuzzer's per-input ``-timeout``), a
memory blow-up (``-rss_limit_mb``) or an uncaught exception ends that process and is reported
here with the input that caused it (saved under ``--artifacts``). A target fails when its process
does not end with status 0, or leaves files in its temporary directory.

The soak check quantizes the bundled model ``--soak`` times in a row through the CLI and reports
the growth of the process's resident memory and any files left behind; it fails on leftovers or
on growth above ``--max-growth-mib``.

Exit status 0 when every target and the soak check pass, 1 otherwise, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

#: Files onnxruntime keeps in the temporary directory of any process that imports it.
FOREIGN_TMP_FILES = {".ses"}


#: The kernel API has its own fuzzer (scripts/fuzz_kernels.py: seeded cases in child processes
#: with guard pages around the arrays); it runs here as one more target.
KERNELS = "kernels"


def _target_names() -> list[str]:
    from fuzz_targets import TARGETS

    return [*TARGETS, KERNELS]


def _target(name: str):  # type: ignore[no-untyped-def]
    from fuzz_targets import TARGETS

    return TARGETS[name]


# -- child: one target under atheris ---------------------------------------------------------------
def run_child(name: str, seconds: int, corpus: Path, artifacts: Path) -> None:
    import atheris

    with atheris.instrument_imports(include=["onnxq"]):
        import onnxq.api
        import onnxq.calibration.engine
        import onnxq.calibration.result
        import onnxq.cli
        import onnxq.inspect
        import onnxq.kernels  # noqa: F401
    target = _target(name)

    def test_one_input(data: bytes) -> None:
        try:
            target.run(data)
        except BaseException:
            traceback.print_exc()  # atheris ends the process; its log says why
            sys.stderr.flush()
            raise

    def mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if rng.random() < 0.5:
            return atheris.Mutate(data, max_size)
        try:
            out = target.mutate(data, max_size, rng)
        except Exception:  # a mutator's own failure on a strange input is not a finding
            out = data
        return out if out != data else atheris.Mutate(data, max_size)

    args = [
        sys.argv[0],
        str(corpus),
        f"-max_total_time={seconds}",
        f"-timeout={target.timeout_s}",
        f"-max_len={target.max_len}",
        "-rss_limit_mb=6144",
        "-print_final_stats=1",
        f"-artifact_prefix={artifacts}/{name}-",
        "-close_fd_mask=1",  # the targets' stdout
    ]
    atheris.Setup(args, test_one_input, custom_mutator=mutator)
    atheris.Fuzz()


# -- parent: run the targets, then the soak check ---------------------------------------------------
def run_target(name: str, seconds: int, artifacts: Path) -> bool:
    base = Path(tempfile.mkdtemp(prefix=f"onnxq-fuzz-{name}-"))
    corpus, tmp = base / "corpus", base / "tmp"
    corpus.mkdir()
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    if name == KERNELS:
        seeds: list[bytes] = []
        cmd = [sys.executable, str(HERE / "fuzz_kernels.py"), "--seconds", str(seconds), "--jobs", "1"]
    else:
        seeds = _target(name).seeds()
        for i, seed in enumerate(seeds):
            (corpus / f"seed-{i:04d}").write_bytes(seed)
        cmd = [sys.executable, __file__, "--child", name, "--seconds", str(seconds), "--corpus", str(corpus)]
        cmd += ["--artifacts", str(artifacts)]
    start = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, env=env, cwd=base, capture_output=True, text=True, errors="replace", timeout=seconds + 300
        )
        status, log = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        status = -9
        log = ((e.stdout or b"") + (e.stderr or b"")).decode(errors="replace") + "\n(the whole run hung)"
    elapsed = time.monotonic() - start
    runs = _stat(log, "number_of_executed_units")
    new = _stat(log, "new_units_added")
    if name == KERNELS:
        found = re.findall(r"(\d+) cases tried, (\d+) findings", log)
        runs = int(found[-1][0]) if found else 0
    left = sorted(
        p.name
        for p in tmp.iterdir()
        if p.name not in FOREIGN_TMP_FILES and not p.name.startswith("onnxq-fuzz-work-")
    )
    ok = status == 0 and not left
    print(
        f"{name:8s} {'ok' if ok else 'FAILED':6s} {runs:>8} inputs in {elapsed:6.0f} s "
        f"({runs / max(elapsed, 1e-9):6.1f}/s)"
        + (
            f", {len(seeds)} seeds, {new} new coverage inputs" if name != KERNELS else ", seeded random cases"
        ),
        flush=True,
    )
    if status != 0:
        lines = [line for line in log.splitlines() if line.strip()]
        print(f"  exit status {status}; the end of its log:", file=sys.stderr)
        for line in lines[-40:]:
            print(f"  | {line}", file=sys.stderr)
        crashes = sorted(artifacts.glob(f"{name}-*"), key=lambda p: p.stat().st_mtime)  # newest last
        if crashes:
            print(f"  input that caused it: {crashes[-1]}", file=sys.stderr)
    if left:
        print(f"  files left in its temporary directory: {left}", file=sys.stderr)
    shutil.rmtree(base, ignore_errors=True)
    return ok


def _stat(log: str, key: str) -> int:
    found = re.findall(rf"stat::{key}:\s+(\d+)", log)
    return int(found[-1]) if found else 0


def _rss_bytes() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def soak(count: int, max_growth_mib: float) -> bool:
    """``count`` quantizations of the bundled model through the CLI, in this process."""
    import contextlib
    import io

    from onnxq.cli import main
    from onnxq.demo import asset_path

    work = Path(tempfile.mkdtemp(prefix="onnxq-soak-"))
    tmp = Path(tempfile.gettempdir())
    shutil.copy(asset_path("digits_cnn.onnx"), work / "model.onnx")
    shutil.copy(asset_path("digits_calib.npz"), work / "calib.npz")
    tmp_before = set(os.listdir(tmp))
    rss, seconds = [], []
    failures = 0
    for i in range(count):
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            args = ["quantize", str(work / "model.onnx"), "-o", str(work / f"out{i % 2}.onnx")]
            code = main([*args, "--calib", str(work / "calib.npz"), "--no-progress"])
        failures += code != 0
        seconds.append(time.perf_counter() - start)
        rss.append(_rss_bytes())
    left_work = sorted(set(os.listdir(work)) - {"model.onnx", "calib.npz", "out0.onnx", "out1.onnx"})
    left_tmp = sorted(n for n in set(os.listdir(tmp)) - tmp_before if n.startswith(("onnxq", "tmp")))
    shutil.rmtree(work, ignore_errors=True)
    if count == 0:
        return True
    warm = rss[min(9, count - 1)]  # after the first runs have loaded onnxruntime and filled caches
    growth = (rss[-1] - warm) / 2**20
    ok = failures == 0 and not left_work and not left_tmp and growth <= max_growth_mib
    print(
        f"soak     {'ok' if ok else 'FAILED':6s} {count} quantizations, "
        f"median {statistics.median(seconds):.2f} s each; "
        f"RSS {rss[0] / 2**20:.0f} MiB after the first, {warm / 2**20:.0f} MiB after the 10th, "
        f"{rss[-1] / 2**20:.0f} MiB after the last (growth {growth:+.1f} MiB, limit {max_growth_mib:.0f}); "
        f"{failures} failed; files left: {left_work + left_tmp or 'none'}",
        flush=True,
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, help="how long each target runs")
    length.add_argument("--seconds", type=int, help="how long each target runs (default 20)")
    parser.add_argument("--targets", help="comma-separated targets (default: all)")
    parser.add_argument("--soak", type=int, default=50, help="quantizations in the soak check (0: none)")
    parser.add_argument("--max-growth-mib", type=float, default=64.0, help="RSS growth the soak check allows")
    parser.add_argument(
        "--artifacts", type=Path, default=Path("fuzz-artifacts"), help="where crashing inputs go"
    )
    parser.add_argument(
        "--replay",
        type=Path,
        nargs="+",
        help="run these inputs once (target from the file name, or --targets)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    seconds = int(args.minutes * 60) if args.minutes is not None else (args.seconds or 20)
    if args.replay:
        for path in args.replay:
            # an artifact is named <target>-crash-<hash>; --targets overrides the name
            name = args.targets or path.name.split("-", 1)[0]
            if name not in _target_names() or name == KERNELS:
                print(f"fuzz: {path}: name the target with --targets (one of the loaders)", file=sys.stderr)
                return 2
            _target(name).run(path.read_bytes())
            print(f"{path}: no finding")
        return 0
    if args.child:
        run_child(args.child, seconds, args.corpus, args.artifacts.resolve())
        return 0
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("fuzz: atheris is not installed (pip install -e '.[dev]' on Linux x86-64)", file=sys.stderr)
        return 2
    known = _target_names()
    names = known if not args.targets else args.targets.split(",")
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"fuzz: unknown target(s) {unknown} (known: {', '.join(known)})", file=sys.stderr)
        return 2
    args.artifacts.mkdir(parents=True, exist_ok=True)
    results = [run_target(name, seconds, args.artifacts.resolve()) for name in names]
    if args.soak:
        results.append(soak(args.soak, args.max_growth_mib))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
