#!/usr/bin/env python
"""Weight-only quantization of a small causal language model: perplexity, size and latency.

The model is a decoder-only transformer (pre-LayerNorm, 4 layers, d_model 256, 4 heads,
feed-forward 1024, context 128, learned positions, untied output head) over bytes (vocabulary 256),
trained here with torch on the standard library's own ``*.py`` sources: the files are split by a
hash of their path (1 in 10 held out), so train and held-out text never share a file. Training
runs ``--steps`` steps of AdamW (batch 16 windows of 128 bytes); the weights and the ONNX export
(onnxq's dynamo-exporter helper, opset 18, ``tokens [batch, 128] int64 -> logits [batch, 128, 256]``)
are cached in ``--workdir``, so reruns skip both. The same weights are also exported for one token
(``tokens [1, 1]``, the work of one decoding step without a key-value cache).

Variants, each run on onnxruntime:

- ``fp32``: the export;
- ``int8 rtn``: ``onnxq.quantize_weight_only(dtype="int8")``, one scale per output channel;
- ``int4 rtn|gptq b32|b128``: symmetric int4 in blocks of 32 / 128 along the reduction axis, rounded
  to nearest or by GPTQ (calibrated on ``--calib-windows`` training windows), in the ``qdq`` format
  (DequantizeLinear with ``block_size`` feeding MatMul), the ``onnxruntime`` format
  (``com.microsoft.MatMulNBits``, accuracy level 0: float activations) and the ``onnxq`` format
  (``ai.onnxq.DynamicMatMulNBits``, onnxq's int4 kernel: activations rounded to int8 per row).

Every 4-bit and int8 weight of ours takes the scale of least squared rounding error over clipping
ratios (``scale_search="mse"``, onnxq's default; ``--scale-search minmax`` for the full-range
scales). With ``--ort-gptq`` the table adds onnxruntime's own GPTQ
(``matmul_nbits_quantizer.GPTQWeightOnlyQuantConfig``: its defaults, damping 0.01, natural order,
symmetric, on the same calibration windows) and RTN, which quantize MatMul weights only (the
embedding stays float), beside ours restricted the same way (``op_types=["MatMul"]``); it takes
minutes per block size.

Perplexity is ``exp`` of the mean next-byte cross-entropy over ``--eval-windows`` fixed held-out
windows (every position of each window predicted). onnxruntime fuses a qdq 4-bit
DequantizeLinear + MatMul into its MatMulNBits with activations rounded to int8 (accuracy level 4)
by default; the ``ppl`` column sets ``session.qdq_matmulnbits_accuracy_level = 0`` so the qdq model
computes exactly what it says (float activations), and ``ppl ort-def`` shows the qdq 4-bit models
under onnxruntime's default. ``SQNR``: the logits' signal-to-quantization-noise ratio against
fp32 on the first 16 held-out windows, the finer measure of how far each model moved. Latency:
batch 1, one 128-byte window, median over ``--rounds`` interleaved rounds (rotating order), on
``--threads`` threads.

One token (``scripts/weight_only_latency.py``), median over ``--decode-rounds`` interleaved rounds:
the decoder at int4 RTN block 32 / 128 as MatMulNBits (accuracy levels 0 and 4) and in the onnxq
format, and one matmul ``[1, K] x [K, N]`` (block 32) per shape of the decoder plus 4096 x 4096,
onnxq's op against MatMulNBits (levels 0 and 4), with GMAC/s.

Floors (the weight-only issue): GPTQ's perplexity increase over fp32 smaller than RTN's at the same
block size (in each format); int4 block 32 within 5% of fp32's perplexity; the onnxq format's
one-token latency no worse than MatMulNBits' (as the onnxruntime format writes it).

Usage::

    python scripts/bench_weight_only.py --workdir /tmp/lm            # trains once (--steps 2000)
    python scripts/bench_weight_only.py --workdir /tmp/lm --rounds 20 --threads 2
    python scripts/bench_weight_only.py --workdir /tmp/lm --latency-only --decode-rounds 300
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import sysconfig
import time
import zlib
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from weight_only_latency import decode_latency, int4_kernel_latency, interleaved, session

CONTEXT = 128
CONFIG = {"layers": 4, "d_model": 256, "heads": 4, "ff": 1024, "vocab": 256, "context": CONTEXT}
OPSET = 18
BATCH = 16


# ----------------------------------------------------------------------------- corpus


def corpus(max_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out byte streams from the standard library's ``*.py`` files, split by file.

    Files are taken in sorted order of their relative path (``site-packages`` excluded); a file is
    held out when the CRC-32 of its relative path is 0 mod 10. Each stream stops at ``max_bytes``.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    train: list[bytes] = []
    held: list[bytes] = []
    sizes = [0, 0]
    for path in sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix()):
        rel = path.relative_to(root).as_posix()
        if "site-packages" in rel or "__pycache__" in rel:
            continue
        which = 1 if zlib.crc32(rel.encode()) % 10 == 0 else 0
        if sizes[which] >= max_bytes:
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        (held if which else train).append(data)
        sizes[which] += len(data)
    as_array = lambda parts: np.frombuffer(b"\n".join(parts)[:max_bytes], dtype=np.uint8)  # noqa: E731
    return as_array(train), as_array(held)


def windows(stream: np.ndarray, count: int, length: int) -> np.ndarray:
    """``count`` windows of ``length`` bytes at evenly spaced offsets (deterministic), int64."""
    starts = np.linspace(0, len(stream) - length - 1, count).astype(np.int64)
    return np.stack([stream[s : s + length] for s in starts]).astype(np.int64)


# ----------------------------------------------------------------------------- model


def build_model() -> Any:
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, d: int, heads: int, ff: int) -> None:
            super().__init__()
            self.heads = heads
            self.ln1 = nn.LayerNorm(d)
            self.qkv = nn.Linear(d, 3 * d)
            self.proj = nn.Linear(d, d)
            self.ln2 = nn.LayerNorm(d)
            self.up = nn.Linear(d, ff)
            self.down = nn.Linear(ff, d)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, t, d = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
            shape = (b, t, self.heads, d // self.heads)
            q, k, v = (z.reshape(shape).transpose(1, 2) for z in (q, k, v))
            att = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(att.transpose(1, 2).reshape(b, t, d))
            return x + self.down(nn.functional.gelu(self.up(self.ln2(x))))

    class LM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            c = CONFIG
            self.embed = nn.Embedding(c["vocab"], c["d_model"])
            self.pos = nn.Parameter(torch.randn(c["context"], c["d_model"]) * 0.02)
            self.blocks = nn.ModuleList(Block(c["d_model"], c["heads"], c["ff"]) for _ in range(c["layers"]))
            self.ln = nn.LayerNorm(c["d_model"])
            self.head = nn.Linear(c["d_model"], c["vocab"], bias=False)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            x = self.embed(tokens) + self.pos[: tokens.shape[1]]
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln(x))

    torch.manual_seed(0)
    return LM()


def train_or_load(workdir: Path, train: np.ndarray, steps: int, threads: int) -> Path:
    """The exported ONNX model's path, training and exporting first unless cached for ``steps``."""
    import torch

    from onnxq.torch import export

    meta_path = workdir / "lm.json"
    onnx_path = workdir / "lm.onnx"
    weights_path = workdir / "lm.pt"
    wanted = {"config": CONFIG, "steps": steps, "batch": BATCH, "opset": OPSET}
    if meta_path.exists() and onnx_path.exists() and json.loads(meta_path.read_text()) == wanted:
        print(f"cached model ({steps} steps)", file=sys.stderr)
        return onnx_path

    torch.set_num_threads(threads)
    model = build_model()
    if (
        weights_path.exists()
        and meta_path.exists()
        and json.loads(meta_path.read_text()).get("steps") == steps
    ):
        model.load_state_dict(torch.load(weights_path))
    else:
        rng = np.random.default_rng(0)
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01, betas=(0.9, 0.95))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.05)
        data = torch.from_numpy(train.astype(np.int64))
        model.train()
        start = time.perf_counter()
        for step in range(steps):
            idx = torch.from_numpy(rng.integers(0, len(train) - CONTEXT - 1, BATCH))
            batch = torch.stack([data[i : i + CONTEXT + 1] for i in idx.tolist()])
            logits = model(batch[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 256), batch[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            if step % 50 == 0 or step == steps - 1:
                print(
                    f"step {step:5d}  loss {loss.item():.3f}  {time.perf_counter() - start:.0f}s",
                    file=sys.stderr,
                )
        torch.save(model.state_dict(), weights_path)
    example = torch.zeros(1, CONTEXT, dtype=torch.int64)
    export(
        model, example, onnx_path, dynamo=True, opset=OPSET, input_names=["tokens"], output_names=["logits"]
    )
    meta_path.write_text(json.dumps(wanted))
    return onnx_path


def decode_model(workdir: Path, steps: int) -> Path:
    """The same trained weights exported for one token (``tokens [1, 1]``: what each step of
    generation without a key-value cache runs per token), cached next to the main export."""
    import torch

    from onnxq.torch import export

    path, meta_path = workdir / "lm_decode.onnx", workdir / "lm_decode.json"
    wanted = {"config": CONFIG, "steps": steps, "batch": BATCH, "opset": OPSET, "tokens": 1}
    if path.exists() and meta_path.exists() and json.loads(meta_path.read_text()) == wanted:
        return path
    model = build_model()
    model.load_state_dict(torch.load(workdir / "lm.pt"))
    model.eval()
    example = torch.zeros(1, 1, dtype=torch.int64)
    export(model, example, path, dynamo=True, opset=OPSET, input_names=["tokens"], output_names=["logits"])
    meta_path.write_text(json.dumps(wanted))
    return path


# ----------------------------------------------------------------------------- evaluation


def perplexity(sess: Any, evals: np.ndarray, batch: int = 8) -> float:
    """exp(mean next-byte cross-entropy) over every position of every window in ``evals``."""
    total = 0.0
    count = 0
    for i in range(0, len(evals), batch):
        chunk = evals[i : i + batch]
        logits = sess.run(None, {"tokens": chunk[:, :-1]})[0].astype(np.float64)
        logits -= logits.max(axis=-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        target = chunk[:, 1:]
        total -= np.take_along_axis(logp, target[..., None], axis=-1).sum()
        count += target.size
    return math.exp(total / count)



def matmul_only_peers(fp32: Any, calib: list[dict[str, np.ndarray]], search: str) -> dict[str, bytes]:
    """onnxruntime's ``matmul_nbits_quantizer`` (RTN and GPTQ, symmetric, accuracy level 0) and
    ours on the same MatMul weights (the embedding left float, as onnxruntime leaves it)."""
    import onnx
    from onnxruntime.quantization import matmul_nbits_quantizer as mq
    from onnxruntime.quantization.calibrate import CalibrationDataReader

    import onnxq

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rewind()

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

        def rewind(self) -> None:
            self.batches = iter(calib)

    out = {}
    for block in (32, 128):
        for method in ("rtn", "gptq"):
            start = time.perf_counter()
            config = (mq.GPTQWeightOnlyQuantConfig(calibration_data_reader=Reader()) if method == "gptq"
                      else mq.RTNWeightOnlyQuantConfig())  # fmt: skip
            quantizer = mq.MatMulNBitsQuantizer(onnx.ModelProto.FromString(fp32.SerializeToString()),
                                                block_size=block, is_symmetric=True, accuracy_level=0,
                                                algo_config=config)  # fmt: skip
            quantizer.process()
            out[f"MatMul {method} b{block} ort"] = quantizer.model.model.SerializeToString()
            print(f"onnxruntime {method} b{block}: {time.perf_counter() - start:.1f}s", file=sys.stderr)
            ours = onnxq.quantize_weight_only(fp32, "int4", block, method=method, op_types=["MatMul"],
                                              format="onnxruntime", data=calib if method == "gptq" else None,
                                              progress=False, scale_search=search)  # fmt: skip
            out[f"MatMul {method} b{block} ours"] = ours.SerializeToString()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="cache for weights and models")
    parser.add_argument("--steps", type=int, default=2000, help="training steps (default 2000)")
    parser.add_argument("--train-threads", type=int, default=1, help="torch threads for training")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads")
    parser.add_argument("--corpus-bytes", type=int, default=8_000_000, help="cap per split")
    parser.add_argument("--eval-windows", type=int, default=192, help="held-out windows")
    parser.add_argument("--calib-windows", type=int, default=128, help="GPTQ calibration windows")
    parser.add_argument("--rounds", type=int, default=10, help="latency rounds (prompt)")
    parser.add_argument("--decode-rounds", type=int, default=200, help="latency rounds (one token)")
    parser.add_argument("--scale-search", choices=("mse", "minmax"), default="mse",
                        help="how our block scales are chosen (default mse)")  # fmt: skip
    parser.add_argument("--ort-gptq", action="store_true",
                        help="add onnxruntime's GPTQ and RTN and ours, MatMul weights only")  # fmt: skip
    parser.add_argument("--latency-only", action="store_true",
                        help="skip the perplexity table (and GPTQ): one-token latency only")  # fmt: skip
    args = parser.parse_args(argv)

    args.workdir.mkdir(parents=True, exist_ok=True)
    train, held = corpus(args.corpus_bytes)
    print(f"corpus: {len(train)} training bytes, {len(held)} held-out bytes", file=sys.stderr)
    fp32_path = train_or_load(args.workdir, train, args.steps, args.train_threads)
    ok = True
    if not args.latency_only:
        ok = quality(fp32_path, train, held, args)
    decode = decode_latency(decode_model(args.workdir, args.steps), args.threads, args.decode_rounds)
    d, ff = CONFIG["d_model"], CONFIG["ff"]
    shapes = [(d, 3 * d), (d, ff), (ff, d), (4096, 4096)]  # the decoder's, and one of a large model
    kernel = int4_kernel_latency(shapes, args.threads, args.decode_rounds)
    print("\nfloors (latency):")
    for block, ratio in decode.items():
        good = ratio <= 1.0
        ok &= good
        print(f"  decode b{block}: onnxq / MatMulNBits = {ratio:.3f} <= 1: {'ok' if good else 'FAIL'}")
    print("  kernel onnxq / MatMulNBits: " + ", ".join(f"{s} {r:.3f}" for s, r in kernel.items()))
    print("all floors hold" if ok else "SOME FLOORS FAIL")
    return 0 if ok else 1


def quality(fp32_path: Path, train: np.ndarray, held: np.ndarray, args: argparse.Namespace) -> bool:
    """The perplexity / size / prompt-latency table of every variant, and its floors."""
    import onnx
    import onnxruntime as ort

    import onnxq

    threads, rounds = args.threads, args.rounds
    fp32 = onnx.load(str(fp32_path))
    evals = windows(held, args.eval_windows, CONTEXT + 1)
    calib_windows = windows(train[len(train) // 7 :], args.calib_windows, CONTEXT)
    calib = [{"tokens": w[None]} for w in calib_windows]

    models: dict[str, bytes] = {"fp32": fp32.SerializeToString()}
    search = args.scale_search
    models["int8 rtn"] = onnxq.quantize_weight_only(fp32, "int8", progress=False, scale_search=search)
    models["int8 rtn"] = models["int8 rtn"].SerializeToString()
    for block in (32, 128):
        for method in ("rtn", "gptq"):
            for fmt, tag in (("qdq", "qdq"), ("onnxruntime", "nbits"), ("onnxq", "onnxq")):
                name = f"int4 {method} b{block} {tag}"
                start = time.perf_counter()
                q = onnxq.quantize_weight_only(
                    fp32,
                    "int4",
                    block,
                    method=method,
                    format=fmt,
                    data=calib if method == "gptq" else None,
                    progress=False,
                    scale_search=search,
                )
                models[name] = q.SerializeToString()
                print(f"{name}: quantized in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    if args.ort_gptq:
        models.update(matmul_only_peers(fp32, calib, search))

    sessions = {name: session(m, threads) for name, m in models.items()}
    ppl = {name: perplexity(s, evals) for name, s in sessions.items()}
    probe = {"tokens": evals[:16, :-1]}
    logits = {name: s.run(None, probe)[0].astype(np.float64) for name, s in sessions.items()}
    sqnr = {
        name: 10 * math.log10(np.sum(logits["fp32"] ** 2) / max(np.sum((out - logits["fp32"]) ** 2), 1e-30))
        for name, out in logits.items()
    }
    ppl_default = {
        name: perplexity(session(m, threads, float_qdq=False), evals)
        for name, m in models.items()
        if name.startswith("int4") and name.endswith("qdq")
    }

    names = list(models)
    one = {"tokens": evals[:1, :-1]}
    latency = interleaved({name: partial(s.run, None, one) for name, s in sessions.items()}, rounds)

    base = ppl["fp32"]
    size0 = len(models["fp32"])
    print(
        f"\n{len(evals)} held-out windows x {CONTEXT} bytes; batch 1 x {CONTEXT} latency, "
        f"median of {rounds}, {threads} thread(s); onnxruntime {ort.__version__}"
    )
    header = (
        f"{'model':<22} {'ppl':>8} {'d ppl':>7} {'ppl ort-def':>11} {'SQNR dB':>8} "
        f"{'size KB':>9} {'x fp32':>7} {'ms':>7}"
    )
    print(header)
    print("-" * len(header))
    for name in names:
        dflt = f"{ppl_default[name]:.4f}" if name in ppl_default else "-"
        print(
            f"{name:<22} {ppl[name]:8.4f} {100 * (ppl[name] / base - 1):+6.2f}% {dflt:>11} "
            f"{'-' if name == 'fp32' else format(sqnr[name], '8.1f'):>8} "
            f"{len(models[name]) / 1024:9.0f} {len(models[name]) / size0:7.3f} "
            f"{1000 * latency[name]:7.2f}"
        )

    ok = True
    print("\nfloors:")
    if args.ort_gptq:
        for block in (32, 128):
            ours, peer = ppl[f"MatMul gptq b{block} ours"] - base, ppl[f"MatMul gptq b{block} ort"] - base
            good = ours <= peer
            ok &= good
            print(f"  b{block} MatMul only: our GPTQ increase {ours:+.4f} <= onnxruntime's {peer:+.4f}: "
                  f"{'ok' if good else 'FAIL'}")  # fmt: skip
    for block in (32, 128):
        for tag in ("qdq", "nbits", "onnxq"):
            rtn = ppl[f"int4 rtn b{block} {tag}"] - base
            gptq = ppl[f"int4 gptq b{block} {tag}"] - base
            good = gptq < rtn
            ok &= good
            print(
                f"  b{block} {tag}: GPTQ increase {gptq:+.4f} < RTN increase {rtn:+.4f}: "
                f"{'ok' if good else 'FAIL'}"
            )
    for method in ("rtn", "gptq"):
        for tag in ("qdq", "nbits", "onnxq"):
            rel = ppl[f"int4 {method} b32 {tag}"] / base - 1
            good = rel < 0.05
            ok &= good
            print(
                f"  int4 {method} b32 {tag} within 5% of fp32: {100 * rel:+.2f}%: {'ok' if good else 'FAIL'}"
            )
    return ok


if __name__ == "__main__":
    sys.exit(main())
