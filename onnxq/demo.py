"""The ``onnxq demo`` job: quantize the bundled digits CNN and compare it with the fp32 model.

The package ships a small ResNet-style CNN trained on scikit-learn's 8x8 handwritten digits
(``data/digits_cnn.onnx``), 64 calibration images (``data/digits_calib.npz``) and 360 held-out
images with labels (``data/digits_eval.npz``); ``scripts/make_demo_assets.py`` rebuilds them. The
demo needs neither torch nor scikit-learn: it quantizes with the qnnpack preset by default (full
8-bit activations, so onnxruntime fuses every Conv + ReLU6 into its int8 kernel; the x86 preset's
``reduce_range`` keeps those Convs in float there), then runs both models
in onnxruntime (all graph optimisations, one thread) and reports top-1 accuracy, agreement of the
predictions, serialised size and latency (median of timed runs over the whole evaluation batch).
The int8 model also runs lowered to onnxq's own kernels (:func:`onnxq.lower.lower`, custom ops in
the same onnxruntime): a third latency, and whether its outputs are the int8 model's exact bytes.
On CPUs where onnxruntime's u8 x s8 kernels saturate (x86 with AVX2 but no VNNI), the exact bytes
are those of the model's uint8 twin (:mod:`onnxq.passes.uint8_twin`), and the table says
so; the int8 accuracy and latency stay those of the model as the user deploys it.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime as ort

from onnxq.api import prepare
from onnxq.calibration.sources import load_calibration_data
from onnxq.errors import OnnxqError
from onnxq.io import save_model
from onnxq.lower import lower
from onnxq.passes.uint8_twin import exact_on_onnxruntime
from onnxq.report import QuantizationReport
from onnxq.runtime import make_session, ort_u8s8_saturates

logger = logging.getLogger(__name__)

MODEL_FILE = "digits_cnn.onnx"
CALIB_FILE = "digits_calib.npz"
EVAL_FILE = "digits_eval.npz"


@dataclass(frozen=True)
class DemoResult:
    """What ``onnxq demo`` measured; latencies are milliseconds per run over ``num_eval`` images."""

    qconfig: str
    num_calib: int
    num_eval: int
    fp32_accuracy: float
    int8_accuracy: float
    agreement: float
    fp32_bytes: int
    int8_bytes: int
    fp32_latency_ms: float
    int8_latency_ms: float
    onnxq_latency_ms: float
    onnxq_same_outputs: bool
    onnxq_lowered: int
    runs: int
    report: QuantizationReport
    onnxruntime_saturates: bool = False

    @property
    def size_ratio(self) -> float:
        return self.int8_bytes / self.fp32_bytes

    @property
    def speedup(self) -> float:
        return self.fp32_latency_ms / self.int8_latency_ms

    @property
    def onnxq_speedup(self) -> float:
        """onnxruntime int8 latency over onnxq-kernel latency (above 1: onnxq's kernels faster)."""
        return self.int8_latency_ms / self.onnxq_latency_ms


def asset_path(name: str) -> Path:
    """The path of a bundled demo file; a clear error if the installation lacks it."""
    path = Path(str(resources.files("onnxq").joinpath("data").joinpath(name)))
    if not path.is_file():
        raise OnnxqError(f"demo asset '{name}' is missing from the onnxq installation (expected {path})")
    return path


def run_demo(*, runs: int = 30, output: Path | None = None, qconfig: str = "qnnpack") -> DemoResult:
    """Quantize the bundled model with the ``qconfig`` preset and measure both versions;
    ``output`` also saves the int8 model."""
    if runs < 1:
        raise OnnxqError(f"runs must be at least 1, got {runs}")
    model_path = asset_path(MODEL_FILE)
    calib = load_calibration_data(asset_path(CALIB_FILE))
    with np.load(asset_path(EVAL_FILE)) as z:
        images, labels = z["images"], z["labels"]

    prepared = prepare(model_path, qconfig)
    prepared.calibrate(calib, progress=False)
    qmodel = prepared.convert()
    int8_bytes = qmodel.SerializeToString()
    if output is not None:
        save_model(qmodel, output)

    lowered = lower(qmodel)
    fp32 = make_session(model_path, what="demo model", threads=1)
    int8 = make_session(int8_bytes, what="quantized demo model", threads=1)
    ours = make_session(lowered.model, what="demo model on onnxq's kernels", threads=1)
    fp32_pred = _predict(fp32, images)
    int8_pred = _predict(int8, images)
    name = int8.get_inputs()[0].name
    saturates = ort_u8s8_saturates()
    exact = (
        make_session(exact_on_onnxruntime(qmodel), what="quantized demo model, uint8 weights", threads=1)
        if saturates
        else int8
    )
    same = bool(np.array_equal(exact.run(None, {name: images})[0], ours.run(None, {name: images})[0]))
    fp32_ms, int8_ms, onnxq_ms = _median_ms([fp32, int8, ours], images, runs)
    return DemoResult(
        qconfig=qconfig,
        num_calib=prepared.num_samples,
        num_eval=len(labels),
        fp32_accuracy=float(np.mean(fp32_pred == labels)),
        int8_accuracy=float(np.mean(int8_pred == labels)),
        agreement=float(np.mean(fp32_pred == int8_pred)),
        fp32_bytes=model_path.stat().st_size,
        int8_bytes=len(int8_bytes),
        fp32_latency_ms=fp32_ms,
        int8_latency_ms=int8_ms,
        onnxq_latency_ms=onnxq_ms,
        onnxq_same_outputs=same,
        onnxq_lowered=lowered.lowered,
        onnxruntime_saturates=saturates,
        runs=runs,
        report=prepared.report,
    )


def format_demo(r: DemoResult) -> str:
    """The demo's table."""
    q = len(r.report.quantized)
    rows = [
        ("", "fp32", "int8", ""),
        ("top-1 accuracy", f"{100 * r.fp32_accuracy:.2f}%", f"{100 * r.int8_accuracy:.2f}%",
         f"{r.num_eval} held-out digits; {100 * r.agreement:.1f}% same predictions"),
        ("model size", _kib(r.fp32_bytes), _kib(r.int8_bytes), f"{r.size_ratio:.2f}x"),
        ("latency", f"{r.fp32_latency_ms:.2f} ms", f"{r.int8_latency_ms:.2f} ms",
         f"{r.speedup:.2f}x speed-up; median of {r.runs} runs, batch {r.num_eval}, 1 thread"),
        ("onnxq kernels", "", f"{r.onnxq_latency_ms:.2f} ms",
         f"{r.onnxq_speedup:.2f}x onnxruntime int8; {r.onnxq_lowered} nodes on onnxq's custom ops, "
         + ("the same output bytes" if r.onnxq_same_outputs else "OUTPUTS DIFFER")),
    ]  # fmt: skip
    if r.onnxruntime_saturates:
        rows.append(("", "", "", "(compared with the exact int8 results: onnxruntime's u8 x s8 kernels "
                     "saturate on this CPU, AVX2 without VNNI)"))
    lines = [
        f"onnxq demo: digits CNN (ResNet-style, 8x8 inputs), qconfig {r.qconfig}, "
        f"{r.num_calib} calibration samples, {q} of {len(r.report.nodes)} nodes in int8",
        "",
    ]
    lines += [f"{a:<16}{b:>11}{c:>11}   {d}".rstrip() for a, b, c, d in rows]
    return "\n".join(lines)


def _predict(session: ort.InferenceSession, images: np.ndarray) -> np.ndarray:
    name = session.get_inputs()[0].name
    return np.asarray(session.run(None, {name: images})[0]).argmax(axis=1)


def _median_ms(sessions: list[ort.InferenceSession], images: np.ndarray, runs: int) -> list[float]:
    """Median milliseconds per run of each session; runs alternate between the sessions so that
    both see the same machine load."""
    feeds = [{s.get_inputs()[0].name: images} for s in sessions]
    for session, feed in zip(sessions, feeds, strict=True):
        session.run(None, feed)  # warm-up: first-run allocations
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(runs):
        for session, feed, out in zip(sessions, feeds, times, strict=True):
            start = time.perf_counter()
            session.run(None, feed)
            out.append(time.perf_counter() - start)
    return [1000.0 * statistics.median(t) for t in times]


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB"


__all__ = ["DemoResult", "asset_path", "format_demo", "run_demo"]
