"""One-token latency of weight-only models and of one int4 matmul, for ``bench_weight_only.py``.

onnxq's ``ai.onnxq.DynamicMatMulNBits`` (``--format onnxq``: activations rounded to int8 per row
when it runs) against stock onnxruntime's ``com.microsoft.MatMulNBits`` as ``--format
onnxruntime`` writes it (accuracy level 0: float activations) and with ``accuracy_level=4``
(activations rounded to int8 per block, onnxruntime's fastest CPU path). Every comparison runs
its sessions interleaved (the order rotating every round) and reports medians, so all of them
see the same machine load.
"""

from __future__ import annotations

import math
import statistics
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np


def session(model: bytes, threads: int, *, float_qdq: bool = True) -> Any:
    """Stock onnxruntime; onnxq's custom ops registered only for a model of the ``onnxq`` format."""
    import onnxruntime as ort

    from onnxq.kernels.custom_ops import DOMAIN
    from onnxq.runtime import InferenceSession

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    if float_qdq:
        opts.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "0")
    make = InferenceSession if DOMAIN.encode() in model else ort.InferenceSession
    return make(model, opts, providers=["CPUExecutionProvider"])


def with_accuracy_level(model: bytes, level: int) -> bytes:
    """The model with ``accuracy_level`` set on every MatMulNBits (4: activations rounded to int8
    per block, as onnxq's DynamicMatMulNBits rounds them per row; 0, the default: float)."""
    import onnx
    from onnx import helper

    proto = onnx.load_from_string(model)
    for node in proto.graph.node:
        if node.op_type == "MatMulNBits":
            node.attribute.append(helper.make_attribute("accuracy_level", level))
    return proto.SerializeToString()


def runners(models: dict[str, bytes], threads: int, feed: dict[str, np.ndarray]) -> dict[str, Any]:
    """A session per model (:func:`session`), as callables running ``feed``."""
    sessions = {name: session(m, threads) for name, m in models.items()}
    return {name: partial(s.run, None, feed) for name, s in sessions.items()}


def interleaved(runs: dict[str, Any], rounds: int) -> dict[str, float]:
    """Median seconds of each callable over ``rounds`` rounds, the order rotating every round
    (after one warm-up call each), so every one sees the same machine load."""
    names = list(runs)
    times: dict[str, list[float]] = {n: [] for n in names}
    for run in runs.values():
        run()
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
    return {n: statistics.median(ts) for n, ts in times.items()}


def one_matmul(k: int, n: int, block: int, onnxq_op: bool, level: int = 0) -> bytes:
    """``y [1, N] = a [1, K] W^T`` as one MatMulNBits (``accuracy_level``) or, with ``onnxq_op``,
    one ai.onnxq.DynamicMatMulNBits, of the same random symmetric int4 weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from onnxq.kernels.custom_ops import DOMAIN, OPSET
    from onnxq.weights.weight_only import pack_nbits

    rng = np.random.default_rng(k * 7919 + n)
    blocks = math.ceil(k / block)
    packed, _ = pack_nbits(rng.integers(0, 16, (n, k)), np.full((n, blocks), 8), block)
    scales = rng.uniform(1e-3, 1e-2, n * blocks).astype(np.float32)
    attrs: dict[str, int] = {"K": k, "N": n, "bits": 4, "block_size": block}
    if onnxq_op:
        node = helper.make_node("DynamicMatMulNBits", ["a", "B", "s"], ["y"], domain=DOMAIN, **attrs)
        opsets = [helper.make_opsetid("", 21), helper.make_opsetid(DOMAIN, OPSET)]
    else:
        node = helper.make_node("MatMulNBits", ["a", "B", "s"], ["y"], domain="com.microsoft",
                                accuracy_level=level, **attrs)  # fmt: skip
        opsets = [helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])],
        [numpy_helper.from_array(packed, "B"), numpy_helper.from_array(scales, "s")],
    )  # fmt: skip
    model: onnx.ModelProto = helper.make_model(graph, opset_imports=opsets)
    return model.SerializeToString()


def int4_kernel_latency(shapes: list[tuple[int, int]], threads: int, rounds: int) -> dict[str, float]:
    """One matmul ``[1, K] x [K, N]`` at batch 1 (decode) per shape: onnxq's op against
    MatMulNBits (accuracy levels 0 and 4) on stock onnxruntime, interleaved; returns the ratios
    onnxq / MatMulNBits level 0 by shape."""
    print(f"\nint4 matmul, batch 1 (one token), block 32: median of {rounds} interleaved rounds, "
          f"{threads} thread(s)")  # fmt: skip
    header = f"{'K x N':>11} {'op':<24} {'us':>9} {'GMAC/s':>8} {'x MatMulNBits':>14}"
    print(header)
    print("-" * len(header))
    ratios = {}
    for k, n in shapes:
        variants = {"MatMulNBits": one_matmul(k, n, 32, False),
                    "MatMulNBits acc4": one_matmul(k, n, 32, False, 4),
                    "onnxq DynamicMatMulNBits": one_matmul(k, n, 32, True)}  # fmt: skip
        feed = {"a": np.random.default_rng(0).standard_normal((1, k)).astype(np.float32)}
        med = interleaved(runners(variants, threads, feed), rounds)
        for name, sec in med.items():
            ratio = sec / med["MatMulNBits"]
            print(f"{f'{k} x {n}':>11} {name:<24} {1e6 * sec:9.1f} {k * n / sec / 1e9:8.2f} {ratio:14.3f}")
        ratios[f"{k}x{n}"] = med["onnxq DynamicMatMulNBits"] / med["MatMulNBits"]
    return ratios


def decode_latency(decode_path: Path, threads: int, rounds: int) -> dict[int, float]:
    """The decoder for one token, batch 1: fp32, int4 RTN as MatMulNBits (accuracy levels 0 and 4)
    and as onnxq's op, interleaved; returns the ratio onnxq / MatMulNBits level 0 per block."""
    import onnx

    import onnxq

    fp32 = onnx.load(str(decode_path))
    models = {"fp32": fp32.SerializeToString()}
    for block in (32, 128):
        nbits = onnxq.quantize_weight_only(fp32, "int4", block, format="onnxruntime", progress=False)
        models[f"int4 b{block} MatMulNBits"] = nbits.SerializeToString()
        models[f"int4 b{block} MatMulNBits acc4"] = with_accuracy_level(nbits.SerializeToString(), 4)
        ours = onnxq.quantize_weight_only(fp32, "int4", block, format="onnxq", progress=False)
        models[f"int4 b{block} onnxq"] = ours.SerializeToString()
    med = interleaved(runners(models, threads, {"tokens": np.array([[ord("d")]], dtype=np.int64)}), rounds)
    print(f"\ndecoder, one token, batch 1: median of {rounds} interleaved rounds, {threads} thread(s)")
    header = f"{'model':<26} {'us':>9} {'x MatMulNBits':>14}"
    print(header)
    print("-" * len(header))
    for name, sec in med.items():
        block = name.split()[1] if name.startswith("int4") else None
        ratio = "-" if block is None else f"{sec / med[f'int4 {block} MatMulNBits']:14.3f}"
        print(f"{name:<26} {1e6 * sec:9.1f} {ratio:>14}")
    return {b: med[f"int4 b{b} onnxq"] / med[f"int4 b{b} MatMulNBits"] for b in (32, 128)}
