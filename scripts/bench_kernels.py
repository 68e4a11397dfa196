"""Throughput (GMAC/s) of onnxq's native GEMM and conv per ISA, next to the machine's int8 peak and
onnxruntime running the same layer, on ResNet-18 and MobileNetV2 conv shapes at batch 1.

Peak: tight vpmaddwd (exact AVX2), vpmaddubsw (onnxruntime's AVX2 U8S8, saturating), vpdpbusd
(AVX-512 VNNI) and tdpbusd (AMX) loops from scripts/bench_peak.c, compiled here with gcc.
onnxruntime runs each layer three times: as the one-node QDQ model (DequantizeLinear -> Conv with
DequantizeLinear weights and bias -> QuantizeLinear, graph optimisations on, so ORT fuses it into
an NHWC QLinearConv between two Transposes), as the NHWC com.microsoft QLinearConv alone (no
transposes: the strict peer of our NHWC conv), and as that model's uint8 twin (its U8U8 kernels:
on x86 without VNNI its U8S8 kernels saturate the full-range inputs used here, so that is the
exact peer there). The ratio ours/ORT uses the faster of the first two; ours/u8u8 the third.
Runs are interleaved (every variant a few times in a row per round) and the medians reported;
ORT gets the same intra_op_num_threads as our conv gets threads.

    python scripts/bench_kernels.py [--threads 1 2] [--rounds 15] [--nets resnet18 mobilenetv2]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from onnxq.kernels import available_isas, gemm_u8s8, pack_gemm_weights, set_isa
from onnxq.kernels.conv import PreparedConv, nhwc_to_nchw, pack_conv_weights
from onnxq.kernels.reference.conv import requant_scales
from onnxq.passes.uint8_twin import uint8_twin
from onnxq.runtime import make_session

X_SCALE, Y_SCALE, X_ZP, Y_ZP = 0.02, 0.05, 128, 128
BLOCK = 6  # consecutive runs of one variant per round (the first DROP are dropped)
DROP = 2
SETTLE_S = 0.01  # pause before each block: the other engine's spinning threads go to sleep


@dataclass(frozen=True)
class Layer:
    name: str
    c: int
    o: int
    hw: int  # square input
    k: int
    stride: int
    groups: int = 1

    @property
    def pad(self) -> int:
        return self.k // 2

    @property
    def out_hw(self) -> int:
        return (self.hw + 2 * self.pad - self.k) // self.stride + 1

    @property
    def macs(self) -> int:
        return self.out_hw**2 * self.o * (self.c // self.groups) * self.k * self.k


NETS = {
    "resnet18": [
        Layer("stem 7x7/2 3->64 @224", 3, 64, 224, 7, 2),
        Layer("3x3 64 @56", 64, 64, 56, 3, 1),
        Layer("3x3/2 64->128 @56", 64, 128, 56, 3, 2),
        Layer("3x3 128 @28", 128, 128, 28, 3, 1),
        Layer("1x1/2 64->128 @56", 64, 128, 56, 1, 2),
        Layer("3x3/2 128->256 @28", 128, 256, 28, 3, 2),
        Layer("3x3 256 @14", 256, 256, 14, 3, 1),
        Layer("1x1/2 128->256 @28", 128, 256, 28, 1, 2),
        Layer("3x3/2 256->512 @14", 256, 512, 14, 3, 2),
        Layer("3x3 512 @7", 512, 512, 7, 3, 1),
        Layer("1x1/2 256->512 @14", 256, 512, 14, 1, 2),
    ],
    "mobilenetv2": [
        Layer("1x1 expand 16->96 @112", 16, 96, 112, 1, 1),
        Layer("dw 3x3/2 96 @112", 96, 96, 112, 3, 2, groups=96),
        Layer("1x1 project 96->24 @56", 96, 24, 56, 1, 1),
        Layer("1x1 expand 24->144 @56", 24, 144, 56, 1, 1),
        Layer("dw 3x3 144 @56", 144, 144, 56, 3, 1, groups=144),
        Layer("dw 3x3 384 @14", 384, 384, 14, 3, 1, groups=384),
        Layer("1x1 expand 160->960 @7", 160, 960, 7, 1, 1),
        Layer("dw 3x3 960 @7", 960, 960, 7, 3, 1, groups=960),
        Layer("1x1 project 960->320 @7", 960, 320, 7, 1, 1),
    ],
}


def measure_peaks(rounds: int = 5) -> dict[str, float]:
    """GMAC/s of the vpmaddwd (exact AVX2), vpmaddubsw (onnxruntime's AVX2 U8S8, saturating),
    vpdpbusd and tdpbusd loops (only the ISAs this CPU has)."""
    have = available_isas()
    src = Path(__file__).with_name("bench_peak.c")
    with tempfile.TemporaryDirectory() as tmp:
        so = Path(tmp) / "libpeak.so"
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
        lib = ctypes.CDLL(str(so))
        peaks = {}
        for isa, fn_name, steps in [
            ("avx2", "peak_vpmaddwd", 20_000_000),
            ("avx2", "peak_vpmaddubsw", 20_000_000),
            ("avx512vnni", "peak_vpdpbusd", 20_000_000),
            ("amx", "peak_tdpbusd", 2_000_000),
        ]:
            if isa not in have:
                continue
            fn = getattr(lib, fn_name)
            fn.restype = ctypes.c_uint64
            fn.argtypes = [ctypes.c_uint64, ctypes.POINTER(ctypes.c_int32)]
            sink = ctypes.c_int32()
            rates = []
            for _ in range(rounds):
                t = time.perf_counter()
                macs = fn(steps, ctypes.byref(sink))
                rates.append(macs / (time.perf_counter() - t) / 1e9)
            peaks[fn_name] = max(rates)
    return peaks


def _ort_session(model: onnx.ModelProto, threads: int) -> ort.InferenceSession:
    return make_session(model, threads=threads)


def _initializers(w: np.ndarray, ws: np.ndarray, b: np.ndarray) -> list:
    arrays = {
        "xs": np.array(X_SCALE, np.float32),
        "xzp": np.array(X_ZP, np.uint8),
        "wq": w,
        "ws": ws,
        "wzp": np.zeros(ws.shape, np.int8),
        "bq": b,
        "ys": np.array(Y_SCALE, np.float32),
        "yzp": np.array(Y_ZP, np.uint8),
        "bs": (np.float32(X_SCALE) * ws).astype(np.float32),
        "bzp": np.zeros(b.shape, np.int32),
    }
    return [numpy_helper.from_array(v, k) for k, v in arrays.items()]


def ort_models(layer: Layer, w: np.ndarray, ws: np.ndarray, b: np.ndarray) -> dict[str, object]:
    """The QDQ model (NCHW) and the NHWC com.microsoft QLinearConv model of one layer."""
    attrs = {
        "kernel_shape": [layer.k] * 2,
        "strides": [layer.stride] * 2,
        "pads": [layer.pad] * 4,
        "group": layer.groups,
    }
    out = helper.make_tensor_value_info("y", TensorProto.UINT8, None)
    nchw = [1, layer.c, layer.hw, layer.hw]
    qdq = helper.make_graph(
        [
            helper.make_node("DequantizeLinear", ["x", "xs", "xzp"], ["xf"]),
            helper.make_node("DequantizeLinear", ["wq", "ws", "wzp"], ["wf"], axis=0),
            helper.make_node("DequantizeLinear", ["bq", "bs", "bzp"], ["bf"], axis=0),
            helper.make_node("Conv", ["xf", "wf", "bf"], ["yf"], **attrs),
            helper.make_node("QuantizeLinear", ["yf", "ys", "yzp"], ["y"]),
        ],
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, nchw)],
        [out],
        _initializers(w, ws, b),
    )
    nhwc_in = [1, layer.hw, layer.hw, layer.c]
    fused = helper.make_graph(
        [
            helper.make_node(
                "QLinearConv",
                ["x", "xs", "xzp", "wq", "ws", "wzp", "ys", "yzp", "bq"],
                ["y"],
                domain="com.microsoft",
                channels_last=1,
                **attrs,
            )
        ],
        "nhwc",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, nhwc_in)],
        [out],
        [i for i in _initializers(w, ws, b) if i.name not in ("bs", "bzp")],
    )
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)]
    nhwc = helper.make_model(fused, opset_imports=opsets)
    # its uint8 twin: onnxruntime's U8U8 kernels, exact where its U8S8 ones saturate (x86, no VNNI)
    return {
        "ort_qdq": helper.make_model(qdq, opset_imports=opsets),
        "ort_nhwc": nhwc,
        "ort_u8u8": uint8_twin(nhwc),
    }


def _im2col(x: np.ndarray, layer: Layer) -> np.ndarray:
    """A[M, K] of the layer (for the GEMM-only timing), K in (kh, kw, c) order."""
    p, s, oh = layer.pad, layer.stride, layer.out_hw
    xp = np.pad(x[0], ((p, p), (p, p), (0, 0)), constant_values=X_ZP)
    taps = [
        xp[i : i + s * (oh - 1) + 1 : s, j : j + s * (oh - 1) + 1 : s]
        for i in range(layer.k)
        for j in range(layer.k)
    ]
    return np.ascontiguousarray(np.concatenate(taps, axis=-1).reshape(oh * oh, -1))


def bench_layer(
    layer: Layer, isas: list[str], threads: list[int], rounds: int, x_max: int = 255
) -> dict[str, float]:
    rng = np.random.default_rng(0)
    x = rng.integers(0, x_max + 1, (1, layer.hw, layer.hw, layer.c), dtype=np.uint8)
    w = rng.integers(-127, 128, (layer.o, layer.c // layer.groups, layer.k, layer.k), np.int8)
    ws = rng.uniform(0.001, 0.01, layer.o).astype(np.float32)
    b = rng.integers(-1000, 1000, layer.o).astype(np.int32)
    scale = requant_scales(X_SCALE, ws, Y_SCALE)
    packed = pack_conv_weights(w, b, scale, groups=layer.groups)
    geometry = {"strides": (layer.stride,) * 2, "pads": (layer.pad,) * 4}
    variants: dict[str, Callable[[], object]] = {}
    for t in threads:
        conv = PreparedConv(packed, x.shape, X_ZP, Y_ZP, threads=t, **geometry)
        y = np.empty(conv.output_shape, np.uint8)
        for isa in isas:

            def run_conv(isa: str = isa, conv: PreparedConv = conv, y: np.ndarray = y) -> object:
                set_isa(isa)
                return conv(x, y)

            variants[f"conv {isa} t{t}"] = run_conv
    if layer.groups == 1:
        a = _im2col(x, layer)
        pg = pack_gemm_weights(w.transpose(0, 2, 3, 1).reshape(layer.o, -1), transposed=True)
        for isa in isas:

            def run_gemm(isa: str = isa) -> object:
                set_isa(isa)
                return gemm_u8s8(a, pg, a_zero_point=X_ZP, bias=b, scale=scale, out_zero_point=Y_ZP)

            variants[f"gemm {isa} t1"] = run_gemm
    x_nchw = nhwc_to_nchw(x)
    for t in threads:
        for kind, model in ort_models(layer, w, ws, b).items():
            sess = _ort_session(model, t)
            feed = {"x": x_nchw if kind == "ort_qdq" else x}  # the twin keeps x uint8
            variants[f"{kind} t{t}"] = lambda s=sess, f=feed: s.run(None, f)
    # Same bytes as onnxruntime's exact kernels (sanity check of the benchmark itself).
    ours = variants[f"conv {isas[-1]} t{threads[0]}"]()
    theirs = variants[f"ort_u8u8 t{threads[0]}"]()[0]  # type: ignore[index]
    if not np.array_equal(ours, theirs):
        print(f"WARNING {layer.name}: output differs from onnxruntime's U8U8 kernels", file=sys.stderr)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():  # warm-up
        fn()
    # Interleaved in short blocks: each variant runs BLOCK times in a row after a pause, and the
    # first DROP runs of a block are dropped, so that one engine's thread pool, still spinning
    # after its last run, does not steal the other engine's cores (two thread pools on two cores).
    for _ in range(rounds):
        for key, fn in variants.items():
            time.sleep(SETTLE_S)
            for i in range(BLOCK):
                t0 = time.perf_counter()
                fn()
                if i >= DROP:
                    times[key].append(time.perf_counter() - t0)
    set_isa(None)
    return {k: layer.macs / statistics.median(v) / 1e9 for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--nets", nargs="+", choices=sorted(NETS), default=sorted(NETS, reverse=True))
    ap.add_argument("--isas", nargs="+", default=None, help="default: every non-scalar ISA here")
    ap.add_argument(
        "--x-max",
        type=int,
        default=255,
        choices=(127, 255),
        help="inputs drawn from [0, x-max]: 127 is a 7-bit activation (AVX2's vpmaddubsw path)",
    )
    args = ap.parse_args(argv)
    isas = args.isas or [i for i in available_isas() if i != "scalar"] or ["scalar"]
    peaks = measure_peaks()
    print("peak: " + ", ".join(f"{k} {v:.0f} GMAC/s (1 thread)" for k, v in peaks.items()))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"onnxruntime {ort.__version__}; ISAs {', '.join(isas)}; inputs in [0, {args.x_max}]; medians of "
        f"{args.rounds * (BLOCK - DROP)} runs; load average {load:.1f} on {os.cpu_count()} CPUs"
    )
    for net in args.nets:
        for t in args.threads:
            cols = [f"conv {i}" for i in isas] + [
                "gemm best t1",
                "ort qdq",
                "ort nhwc",
                "ort u8u8",
                "ours/ort",
                "ours/u8u8",
            ]
            print(f"\n{net}, {t} thread(s), GMAC/s")
            print(f"{'layer':28s} {'MMAC':>7s} " + " ".join(f"{c:>15s}" for c in cols))
            for layer in NETS[net]:
                r = bench_layer(layer, isas, [t], args.rounds, args.x_max)
                best = max(r[f"conv {i} t{t}"] for i in isas)
                gemm = max((v for k, v in r.items() if k.startswith("gemm")), default=float("nan"))
                ort_best = max(r[f"ort_qdq t{t}"], r[f"ort_nhwc t{t}"])
                vals = [r[f"conv {i} t{t}"] for i in isas]
                vals += [
                    gemm,
                    r[f"ort_qdq t{t}"],
                    r[f"ort_nhwc t{t}"],
                    r[f"ort_u8u8 t{t}"],
                    best / ort_best,
                    best / r[f"ort_u8u8 t{t}"],
                ]
                print(f"{layer.name:28s} {layer.macs / 1e6:7.1f} " + " ".join(f"{v:15.2f}" for v in vals))
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
