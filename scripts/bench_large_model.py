#!/usr/bin/env python
"""Weight-only quantization of a model over protobuf's 2 GB limit: time, peak memory, file size.

The model is a stack of ``--layers`` ``MatMul [d, d] + Relu`` blocks (``--width`` d; the default
36 x 4096 x 4096 float32 is 2.25 GiB of weights), written once with external data into
``--workdir``. Each tool then quantizes it in its own process, ``--rounds`` times in rotating order:

- ``onnxq int4``: ``onnxq quantize --mode weight-only --weight-dtype int4 --block-size 32`` (the CLI:
  load, quantize, check, save atomically, load the output in onnxruntime as the check before the
  move);
- ``onnxq int8``: the same with int8 weights, one scale per output channel;
- ``ort int4``: onnxruntime's ``MatMulNBitsQuantizer`` (block 32, symmetric), saved with external
  data (its own documented use).

Peak memory is sampled from ``/proc/<pid>/status`` every 20 ms: ``anon`` is the process's own
memory (what the issue bounds: about one layer plus the output), ``file`` the pages of
memory-mapped files it touched (the input's external data; the kernel can drop them at will).
Printed: medians of wall time and of both peaks per tool, the output size, and ratios to
onnxruntime's quantizer. Times come from a shared machine: compare the ratios.

Usage::

    python scripts/bench_large_model.py --workdir /tmp/big --rounds 3
    python scripts/bench_large_model.py --workdir /tmp/small --layers 4 --width 1024   # a quick look
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ORT_QUANTIZE = """
import sys
from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
q = MatMulNBitsQuantizer(sys.argv[1], block_size=32, is_symmetric=True)
q.process()
q.model.save_model_to_file(sys.argv[2], use_external_data_format=True)
"""


def build(path: Path, layers: int, width: int) -> None:
    """The float model, written with external data (skipped when it is already there)."""
    import numpy as np
    import onnx_ir as ir

    if path.is_file():
        return
    rng = np.random.default_rng(0)
    x = ir.Value(name="x", shape=ir.Shape(["batch", width]), type=ir.TensorType(ir.DataType.FLOAT))
    nodes, weights, current = [], [], x
    for i in range(layers):
        w = rng.standard_normal((width, width), dtype=np.float32) * np.float32(width**-0.5)
        weight = ir.Value(
            name=f"w{i}", shape=ir.Shape([width, width]), type=ir.TensorType(ir.DataType.FLOAT),
            const_value=ir.tensor(w, name=f"w{i}"),
        )  # fmt: skip
        weights.append(weight)
        for op, inputs in (("MatMul", [current, weight]), ("Relu", None)):
            node = ir.node(op, inputs if inputs is not None else [current], name=f"{op.lower()}{i}")
            out = node.outputs[0]
            out.name = f"{op.lower()}{i}_out"
            out.type = ir.TensorType(ir.DataType.FLOAT)
            out.shape = ir.Shape(["batch", width])
            nodes.append(node)
            current = out
    graph = ir.Graph([x], [current], nodes=nodes, initializers=weights, opset_imports={"": 17}, name="stack")
    tmp = path.with_suffix(".tmp.onnx")
    ir.save(ir.Model(graph, ir_version=8), tmp, external_data=f"{path.name}.data")
    tmp.rename(path)


def run(command: list[str]) -> tuple[float, int, int]:
    """(seconds, peak anonymous MiB, peak file-backed MiB) of one process run."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    anon = file = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            anon = max(anon, int(fields.get("RssAnon", "0 kB").split()[0]))
            file = max(file, int(fields.get("RssFile", "0 kB").split()[0]))
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        err = proc.stderr.read().decode(errors="replace").strip().splitlines() if proc.stderr else []
        raise RuntimeError(f"{command[0:3]} failed: {err[-1] if err else proc.returncode}")
    return seconds, anon // 1024, file // 1024


def size_of(path: Path) -> int:
    data = path.with_name(path.name + ".data")
    return path.stat().st_size + (data.stat().st_size if data.is_file() else 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--layers", type=int, default=36)
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    model = args.workdir / f"stack_{args.layers}x{args.width}.onnx"
    build(model, args.layers, args.width)
    tools = {
        "onnxq int4": lambda out: [sys.executable, "-m", "onnxq", "quantize", str(model), "-o", str(out),
                                   "--mode", "weight-only", "--weight-dtype", "int4", "--block-size", "32"],
        "onnxq int8": lambda out: [sys.executable, "-m", "onnxq", "quantize", str(model), "-o", str(out),
                                   "--mode", "weight-only", "--weight-dtype", "int8"],
        "ort int4": lambda out: [sys.executable, "-c", ORT_QUANTIZE, str(model), str(out)],
    }  # fmt: skip
    results: dict[str, list[tuple[float, int, int]]] = {name: [] for name in tools}
    sizes: dict[str, int] = {}
    names = list(tools)
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            out = args.workdir / f"out_{name.replace(' ', '_')}.onnx"
            for stale in (out, out.with_name(out.name + ".data")):
                stale.unlink(missing_ok=True)
            try:
                results[name].append(run(tools[name](out)))
                sizes[name] = size_of(out)
            except RuntimeError as exc:
                print(f"{name}: {exc}")
    print(f"model: {args.layers} x MatMul [{args.width}, {args.width}], {size_of(model) / 2**30:.2f} GiB, "
          f"{args.rounds} round(s), medians")  # fmt: skip
    peer = results.get("ort int4") or None
    columns = ("time s", "anon MiB", "file MiB", "output MiB", "time/ort", "anon/ort")
    print(f"{'tool':<12} " + " ".join(f"{c:>10}" for c in columns))
    for name, runs in results.items():
        if not runs:
            continue
        t, a, f = (statistics.median(x[i] for x in runs) for i in range(3))
        ratio_t = ratio_a = "-"
        if peer:
            ratio_t = f"{t / statistics.median(x[0] for x in peer):.2f}"
            ratio_a = f"{a / max(statistics.median(x[1] for x in peer), 1):.2f}"
        cells = (f"{t:.1f}", f"{a:.0f}", f"{f:.0f}", f"{sizes[name] / 2**20:.1f}", ratio_t, ratio_a)
        print(f"{name:<12} " + " ".join(f"{c:>10}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
