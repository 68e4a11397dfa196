#!/usr/bin/env python
"""Whole-model latency: fp32 and int8 on onnxruntime next to int8 on onnxq's kernels.

ResNet-18-style and MobileNetV2-style networks (torch, random weights, BatchNorm statistics from a
few random batches) at 224x224 are exported once, quantized by onnxq (``x86`` preset, 32 random
calibration samples) and lowered to onnxq's custom ops (:func:`onnxq.lower.lower`). Each model
then runs as

- ``fp32``: the exported model on onnxruntime,
- ``ort-int8``: the QDQ model on onnxruntime (MLAS int8 kernels, all graph optimisations),
- ``ort-u8u8``: its uint8 twin (``--format qdq-uint8``) on onnxruntime: MLAS's U8U8 kernels,
  exact on every CPU (on x86 without VNNI, MLAS's U8S8 kernels saturate full 8-bit activations;
  the ``x86`` preset's 7-bit activations cannot saturate them),
- ``onnxq``: the lowered model on onnxruntime with onnxq's ops registered,

at batch 1 and 8, with 1 and 2 intra-op threads. The three runs of one setting are interleaved
(order rotating per round) so that a noisy neighbour slows all of them alike; medians over the
rounds and the ratios ``ort-int8 / onnxq`` (above 1: onnxq faster), ``ort-u8u8 / onnxq`` and
``fp32 / onnxq`` are printed. Outputs of ``onnxq`` and ``ort-int8`` are compared first (they must be equal).

``--profile`` adds, for each batch size on one thread, onnxruntime's per-node profile of both
int8 models (their runs interleaved) summed by op type: where the time goes (convolutions, layout
changes, the QDQ ops left to onnxruntime). ``--profile-nodes`` also lists every convolution of
both models side by side (paired by the exported Conv they came from) with totals per kind
(1x1, 3x3, depthwise).

Usage::

    python scripts/bench_models.py                    # 15 rounds, both nets, batch 1 and 8
    python scripts/bench_models.py --rounds 30 --nets resnet18 --batches 1 --threads 1 --profile
    python scripts/bench_models.py --nets mobilenetv2 --threads 1 --rounds 8 --profile-nodes
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quantize import build_resnet18

IMAGE = 224
CALIB_SAMPLES = 32
KINDS = ("fp32", "ort-int8", "ort-u8u8", "onnxq")


def build_mobilenetv2() -> Any:
    """MobileNetV2 (width 1.0, 1000 classes): inverted residuals with ReLU6, torch only."""
    import torch
    from torch import nn

    def cbr(cin: int, cout: int, k: int, s: int, groups: int = 1, act: bool = True) -> list[nn.Module]:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        return layers + ([nn.ReLU6()] if act else [])

    class Inverted(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
            super().__init__()
            hidden = cin * expand
            layers = cbr(cin, hidden, 1, 1) if expand != 1 else []
            layers += cbr(hidden, hidden, 3, stride, groups=hidden) + cbr(hidden, cout, 1, 1, act=False)
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.body(x) if self.residual else self.body(x)

    class MobileNetV2(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            spec = [
                (1, 16, 1, 1),
                (6, 24, 2, 2),
                (6, 32, 3, 2),
                (6, 64, 4, 2),
                (6, 96, 3, 1),
                (6, 160, 3, 2),
                (6, 320, 1, 1),
            ]
            layers: list[nn.Module] = cbr(3, 32, 3, 2)
            cin = 32
            for t, c, n, s in spec:
                for i in range(n):
                    layers.append(Inverted(cin, c, s if i == 0 else 1, t))
                    cin = c
            layers += cbr(cin, 1280, 1, 1)
            self.features = nn.Sequential(*layers)
            self.fc = nn.Linear(1280, 1000)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))

    return MobileNetV2()


NETS = {"resnet18": build_resnet18, "mobilenetv2": build_mobilenetv2}


def make_models(net: str, workdir: Path) -> dict[str, bytes]:
    """fp32, QDQ int8 and lowered int8 models of ``net`` (serialised)."""
    import torch

    import onnxq
    from onnxq.lower import lower
    from onnxq.passes.uint8_twin import uint8_twin
    from onnxq.torch import export

    torch.manual_seed(0)
    module = NETS[net]()
    module.train()
    with torch.no_grad():
        for _ in range(3):
            module(torch.randn(8, 3, IMAGE, IMAGE))
    module.eval()
    path = workdir / f"{net}.onnx"
    export(
        module,
        torch.randn(1, 3, IMAGE, IMAGE),
        path,
        dynamo=False,
        opset=17,
        input_names=["input"],
        output_names=["logits"],
    )
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((CALIB_SAMPLES, 3, IMAGE, IMAGE)).astype(np.float32)
    qdq = onnxq.quantize_static(
        str(path), [{"input": calib[i : i + 8]} for i in range(0, CALIB_SAMPLES, 8)], "x86", progress=False
    )
    lowered = lower(qdq)
    print(
        f"{net}: {lowered.lowered} convs lowered, {len(lowered.notes)} left ({'; '.join(lowered.notes[:3])})"
    )
    return {
        "fp32": path.read_bytes(),
        "ort-int8": qdq.SerializeToString(),
        "ort-u8u8": uint8_twin(qdq).SerializeToString(),
        "onnxq": lowered.model.SerializeToString(),
    }


def session(model: bytes, kind: str, threads: int, profile: Path | None = None) -> Any:
    import onnxruntime as ort

    from onnxq.runtime import register_custom_ops

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if profile is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(profile)
    if kind == "onnxq":
        register_custom_ops(opts)
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def bench(models: dict[str, bytes], batch: int, threads: int, rounds: int) -> dict[str, float]:
    x = {"input": np.random.default_rng(1).standard_normal((batch, 3, IMAGE, IMAGE)).astype(np.float32)}
    sessions = {k: session(models[k], k, threads) for k in KINDS}
    a, b = sessions["ort-u8u8"].run(None, x)[0], sessions["onnxq"].run(None, x)[0]
    if not np.array_equal(a, b):
        print(f"  warning: onnxq differs from the exact int8 model (max {np.abs(a - b).max():.3g})")
    for s in sessions.values():  # warm-up
        s.run(None, x)
    times: dict[str, list[float]] = {k: [] for k in KINDS}
    for r in range(rounds):
        order = KINDS[r % len(KINDS) :] + KINDS[: r % len(KINDS)]
        for k in order:
            t0 = time.perf_counter()
            sessions[k].run(None, x)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def _node_times(path: str) -> list[tuple[str, str, float]]:
    """(node, op type, median ms) of every node of an onnxruntime profile, in execution order."""
    per: dict[str, list[float]] = defaultdict(list)
    ops: dict[str, str] = {}
    for e in json.loads(Path(path).read_text()):
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            node = e["name"][: -len("_kernel_time")]
            ops.setdefault(node, e["args"].get("op_name", "?"))
            per[node].append(e["dur"] / 1e3)
    return [(node, ops[node], statistics.median(per[node][1:] or per[node])) for node in ops]


def _conv_kinds(model: bytes) -> dict[str, str]:
    """Node name -> 'depthwise', '1x1', '3x3' ... of each QLinearConv of a model (from its
    weights)."""
    import onnx

    graph = onnx.load_from_string(model).graph
    dims = {t.name: list(t.dims) for t in graph.initializer}
    kinds = {}
    for node in graph.node:
        if node.op_type != "QLinearConv":
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        w = dims.get(node.input[3], [0, 0, 0, 0])
        kinds[node.name] = "depthwise" if group > 1 else f"{w[2]}x{w[3]}"
    return kinds


def _source_node(name: str) -> str:
    """The exported Conv a fused or lowered node came from: onnxruntime names its fusions
    '<conv>_token_<n>', onnxq's lowering '<conv>_<n>'."""
    return re.sub(r"(_token)?_\d+$", "", name)


def profile(models: dict[str, bytes], workdir: Path, batch: int, nodes: bool, runs: int = 10) -> None:
    """onnxruntime's per-node profile of both int8 models at one thread, their runs interleaved
    (so that a noisy neighbour slows both alike): per op type, and with ``nodes`` per conv (paired
    by the exported Conv each came from)."""
    x = {"input": np.random.default_rng(1).standard_normal((batch, 3, IMAGE, IMAGE)).astype(np.float32)}
    kinds = ("ort-int8", "onnxq")
    sessions = {kind: session(models[kind], kind, 1, workdir / kind) for kind in kinds}
    for _ in range(runs + 1):
        for s in sessions.values():
            s.run(None, x)
    times = {kind: _node_times(sessions[kind].end_profiling()) for kind in kinds}
    for kind in kinds:
        by_op: dict[str, float] = defaultdict(float)
        for _, op, ms in times[kind]:
            by_op[op] += ms
        total = sum(by_op.values())
        parts = ", ".join(f"{op} {ms:.2f}" for op, ms in sorted(by_op.items(), key=lambda kv: -kv[1])[:8])
        print(f"  profile b{batch} {kind:8s} {total:7.2f} ms/run in nodes: {parts}")
    if not nodes:
        return
    ort_ms_of = {_source_node(n): ms for n, op, ms in times["ort-int8"] if op == "QLinearConv"}
    ours = [(n, ms) for n, op, ms in times["onnxq"] if op == "QLinearConv"]
    shapes = _conv_kinds(models["onnxq"])
    if len(ort_ms_of) != len(ours) or any(_source_node(n) not in ort_ms_of for n, _ in ours):
        print("  per-conv profile skipped: the two models' convs do not pair up by name")
        return
    print(f"  {'conv (onnxq node)':52s} {'kind':>9s} {'ort ms':>8s} {'onnxq ms':>8s} {'ort/onnxq':>9s}")
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for name, ours_ms in ours:
        ort_ms, kind = ort_ms_of[_source_node(name)], shapes.get(name, "?")
        totals[kind][0] += ort_ms
        totals[kind][1] += ours_ms
        print(f"  {name[-52:]:52s} {kind:>9s} {ort_ms:8.3f} {ours_ms:8.3f} {ort_ms / ours_ms:8.2f}x")
    for kind, (ort_ms, ours_ms) in sorted(totals.items()):
        ratio = ort_ms / ours_ms
        print(f"  all {kind:9s} convs: ort {ort_ms:7.3f} ms, onnxq {ours_ms:7.3f} ms, {ratio:.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--profile", action="store_true", help="per-op-type profile at 1 thread")
    parser.add_argument("--profile-nodes", action="store_true", help="--profile, and per conv")
    args = parser.parse_args(argv)
    from onnxq.kernels import active_isa

    print(f"onnxq kernels on {active_isa()}; medians of {args.rounds} interleaved rounds, ms")
    print(
        f"{'net':12s} {'batch':>5s} {'thr':>3s} {'fp32':>9s} {'ort-int8':>9s} {'ort-u8u8':>9s} "
        f"{'onnxq':>9s} {'ort/onnxq':>9s} {'u8u8/onnxq':>10s} {'fp32/onnxq':>10s}"
    )
    with tempfile.TemporaryDirectory(prefix="onnxq-bench-") as tmp:
        for net in args.nets:
            models = make_models(net, Path(tmp))
            for batch in args.batches:
                for threads in args.threads:
                    t = bench(models, batch, threads, args.rounds)
                    print(
                        f"{net:12s} {batch:5d} {threads:3d} {t['fp32']:9.2f} {t['ort-int8']:9.2f} "
                        f"{t['ort-u8u8']:9.2f} {t['onnxq']:9.2f} {t['ort-int8'] / t['onnxq']:9.2f}x "
                        f"{t['ort-u8u8'] / t['onnxq']:9.2f}x {t['fp32'] / t['onnxq']:9.2f}x",
                        flush=True,
                    )
            if args.profile or args.profile_nodes:
                for batch in args.batches:
                    profile(models, Path(tmp), batch, args.profile_nodes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
