#!/usr/bin/env python
"""Dynamic quantization: latency and size of fp32, onnxruntime's quantize_dynamic and onnxq's.

Models (torch, random weights, exported with the TorchScript exporter at opset 17):

- ``encoder-256`` / ``encoder-768``: ``nn.TransformerEncoder``, 2 layers of multi-head attention
  (4 / 12 heads), LayerNorm and GELU, feed-forward 4 x d_model, on a sequence of 128 tokens;
  every parameter perturbed as training would (random weights, nonzero biases);
- ``lstm``: a 2-layer ``nn.LSTM`` (512 inputs, 512 hidden) over 128 steps and a Linear head.

Each runs at batch 1 as

- ``fp32``: the exported model;
- ``ort-dyn``: ``onnxruntime.quantization.quantize_dynamic`` with its defaults (int8 weights per
  tensor; MatMul -> MatMulInteger, LSTM -> DynamicQuantizeLSTM);
- ``qdq`` / ``qdq-u8``: ``onnxq.quantize_dynamic(format="qdq")``, int8 / uint8 weights per channel
  (onnxruntime fuses its DynamicQuantizeLinear + MatMulInteger + scale into MatMulIntegerToFloat);
- ``ort`` / ``ort-u8``: ``onnxq.quantize_dynamic(format="onnxruntime")`` (DynamicQuantizeMatMul,
  DynamicQuantizeLSTM), int8 / uint8 weights;
- ``onnxq``: ``onnxq.quantize_dynamic(format="onnxq")``, MatMul/Gemm as ai.onnxq.DynamicMatMul on
  onnxq's kernels and LSTM as ai.onnxq.DynamicLSTM (exact on every CPU), run with onnxq's custom ops;
  its default 7-bit weights (``reduce_range``) run on AVX2's ``vpmaddubsw``;
- ``onnxq-w8``: the same with 8-bit weights (``reduce_range=False``), which AVX2 without VNNI
  computes exactly only by widening to int16.

The qdq and ort variants use quantize_dynamic's default 7-bit weights too, which stock
onnxruntime computes exactly on every CPU (the uint8 variants store the same weights as uint8).

All runs of one model are interleaved (order rotating per round), so a noisy neighbour slows them
alike; the medians (ms), each one's ratio ``ort-dyn / it`` (above 1: faster than onnxruntime's
quantize_dynamic output), the file sizes and the outputs' cosine with fp32 are printed. uint8
weights matter on x86 without VNNI, where onnxruntime's u8 x s8 kernels saturate
(``onnxq.runtime.ort_u8s8_saturates``); the cosines show what that costs.

Usage::

    python scripts/bench_dynamic.py                     # 15 rounds, 1 thread, all models
    python scripts/bench_dynamic.py --rounds 5 --models encoder-256 lstm --threads 2
    python scripts/bench_dynamic.py --kinds ort-dyn onnxq onnxq-w8    # only these (ort-dyn always)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SEQ = 128
KINDS = ("fp32", "ort-dyn", "qdq", "qdq-u8", "ort", "ort-u8", "onnxq", "onnxq-w8")


def build(name: str) -> tuple[Any, Any]:
    """The torch module and an example input of the model called ``name``."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    if name.startswith("encoder-"):
        d = int(name.split("-")[1])
        layer = nn.TransformerEncoderLayer(
            d, d // 64, 4 * d, dropout=0.0, activation="gelu", batch_first=True
        )
        module = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        with torch.no_grad():  # as if trained: no two initializers equal (torch's export would share
            for p in module.parameters():  # them, and onnxruntime's fusions then differ)
                p.copy_(torch.randn_like(p) * 0.02 + (p if p.dim() == 1 else 0))
        return module, torch.randn(1, SEQ, d)

    class LSTMHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(512, 512, num_layers=2, batch_first=True)
            self.fc = nn.Linear(512, 512)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.lstm(x)[0])

    return LSTMHead(), torch.randn(1, SEQ, 512)


MODELS = ("encoder-256", "encoder-768", "lstm")


def make_models(name: str, workdir: Path) -> tuple[dict[str, bytes], np.ndarray]:
    """Every variant of ``name`` (serialised) and the input to run them on."""
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    import onnxq
    from onnxq.torch import export

    module, example = build(name)
    path = workdir / f"{name}.onnx"
    export(module, example, path, dynamo=False, opset=17, input_names=["input"], output_names=["output"])
    ort_path = workdir / f"{name}.ort-dyn.onnx"
    ort_quantize_dynamic(str(path), str(ort_path))
    models = {"fp32": path.read_bytes(), "ort-dyn": ort_path.read_bytes()}
    for fmt, kind in (("qdq", "qdq"), ("onnxruntime", "ort")):
        for dtype, suffix in (("int8", ""), ("uint8", "-u8")):
            model = onnxq.quantize_dynamic(str(path), format=fmt, weight_dtype=dtype)
            models[kind + suffix] = model.SerializeToString()
    models["onnxq"] = onnxq.quantize_dynamic(str(path), format="onnxq").SerializeToString()
    w8 = onnxq.quantize_dynamic(str(path), format="onnxq", reduce_range=False)
    models["onnxq-w8"] = w8.SerializeToString()
    return models, example.numpy()


def session(model: bytes, threads: int) -> Any:
    import onnxruntime as ort

    from onnxq.runtime import register_custom_ops

    opts = register_custom_ops(ort.SessionOptions())  # for the onnxq format's ai.onnxq ops
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def bench(
    models: dict[str, bytes], x: np.ndarray, threads: int, rounds: int, kinds: tuple[str, ...] = KINDS
) -> dict[str, tuple[float, float]]:
    """``{kind: (median ms, cosine with fp32)}`` for ``kinds`` (fp32 is always run once, for the
    cosines)."""
    feeds = {"input": x}
    sessions = {k: session(models[k], threads) for k in kinds}
    reference = session(models["fp32"], threads).run(None, feeds)[0]
    outputs = {k: s.run(None, feeds)[0] for k, s in sessions.items()}  # also the warm-up
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for r in range(rounds):
        for k in kinds[r % len(kinds) :] + kinds[: r % len(kinds)]:
            t0 = time.perf_counter()
            sessions[k].run(None, feeds)
            times[k].append(time.perf_counter() - t0)
    return {k: (statistics.median(times[k]) * 1e3, cosine(reference, outputs[k])) for k in kinds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--threads", nargs="+", type=int, default=[1])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    args = parser.parse_args(argv)
    kinds = tuple(k for k in KINDS if k in args.kinds or k == "ort-dyn")  # ort-dyn: the ratios' base
    from onnxq.runtime import ort_u8s8_saturates

    print(
        f"batch 1, sequence {SEQ}; medians of {args.rounds} interleaved rounds (ms); x: ort-dyn / it; "
        f"onnxruntime's u8 x s8 kernels saturate here: {ort_u8s8_saturates()}"
    )
    with tempfile.TemporaryDirectory(prefix="onnxq-bench-dynamic-") as tmp:
        for name in args.models:
            models, x = make_models(name, Path(tmp))
            sizes = {k: len(v) / len(models["fp32"]) for k, v in models.items()}
            print(f"{name}: fp32 {len(models['fp32']) / 2**20:.1f} MiB; size vs fp32: "
                  + ", ".join(f"{k} {sizes[k]:.3f}" for k in kinds if k != "fp32"))  # fmt: skip
            for threads in args.threads:
                t = bench(models, x, threads, args.rounds, kinds)
                base = t["ort-dyn"][0]
                cells = "  ".join(
                    f"{k} {ms:7.2f} {base / ms:4.2f}x cos {cos:.6f}" for k, (ms, cos) in t.items()
                )
                print(f"  {threads} thread(s): {cells}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
