"""The wild corpus: every model quantizes with onnxq's default, runs, and is no less accurate
against fp32 than onnxruntime's ``quantize_static`` with its defaults, on the same data.

The comparison runs here (onnxruntime's quantizer is a dependency already): both tools calibrate on
the same batches, both quantized models run on the same held-out inputs, and each output's SQNR
against fp32 must be at least onnxruntime's, less :data:`TOLERANCE_DB` for float noise.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import onnxq

pytest.importorskip("torch")


def _wild():  # type: ignore[no-untyped-def]
    name = "onnxq_e2e_wild"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("wild.py"))
        assert spec is not None and spec.loader is not None
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


wild = _wild()
TOLERANCE_DB = 0.1
CALIB, HELD_OUT = 16, 8

# torchscript exports attention (scaled_dot_product_attention) from opset 14 on
VARIANTS = [(case, "torchscript", 14 if case == "bert" else 13, None) for case in wild.CASES]
VARIANTS += [(case, "torchscript", 17, None) for case in wild.CASES]
VARIANTS += [(case, "dynamo", 18, None) for case in wild.CASES]
VARIANTS += [(case, "torchscript", 17, rewrite) for case in ("resnet50", "yolo") for rewrite in wild.REWRITES]
VARIANTS += [(case, "torchscript", 17, "minus_one_dims") for case in ("crnn", "bert")]
VARIANTS += [(case, "torchscript", 11, "old_opset") for case in ("resnet50", "mobilenetv3", "crnn")]


def _model(name: str, exporter: str, opset: int, rewrite: str | None) -> onnx.ModelProto:
    case = wild.CASES[name]
    model = wild.export(case, exporter, opset, initializers_as_inputs=rewrite == "old_opset")
    if rewrite in wild.REWRITES:
        model = wild.REWRITES[rewrite](model)
    onnx.checker.check_model(model)
    return model


def _inputs(name: str, n: int, seed: int, rewrite: str | None) -> np.ndarray:
    x = wild.make_inputs(wild.CASES[name], n, seed)
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if rewrite == "nhwc_input" else x


@pytest.mark.parametrize(
    ("name", "exporter", "opset", "rewrite"),
    VARIANTS,
    ids=[f"{c}-{e}{o}-{r or 'as-exported'}" for c, e, o, r in VARIANTS],
)
def test_wild_model_quantizes_and_is_no_worse_than_onnxruntime_default(
    name: str, exporter: str, opset: int, rewrite: str | None, run_ort, tmp_path: Path
) -> None:
    fp32 = _model(name, exporter, opset, rewrite)
    x = _inputs(name, CALIB, 1, rewrite)
    calibration = [{"input": x[: CALIB // 2]}, {"input": x[CALIB // 2 :]}]
    held = {"input": _inputs(name, HELD_OUT, 2, rewrite)}
    ours = onnxq.quantize_static(fp32, calibration, progress=False)
    onnx.checker.check_model(ours)
    theirs = wild.onnxruntime_default(fp32, calibration, tmp_path)
    reference, got, peer = run_ort(fp32, held), run_ort(ours, held), run_ort(theirs, held)
    for k, (ref, out, other) in enumerate(zip(reference, got, peer, strict=True)):
        assert out.shape == ref.shape
        ours_db, theirs_db = wild.sqnr_db(ref, out), wild.sqnr_db(ref, other)
        assert ours_db >= theirs_db - TOLERANCE_DB, (
            f"output {k}: onnxq {ours_db:.1f} dB < onnxruntime {theirs_db:.1f} dB"
        )


def _count(graph: onnx.GraphProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
        for attr in node.attribute:
            if attr.HasField("g"):
                for op, n in _count(attr.g).items():
                    counts[op] = counts.get(op, 0) + n
    return counts


def test_streaming_model_inside_nested_if_branches_is_quantized_where_calibration_went(run_ort) -> None:
    fp32 = wild.streaming_model(depth=4)
    rng = np.random.default_rng(0)

    def runs(n: int, sr: int) -> list[dict[str, np.ndarray]]:  # Python dicts: runs as given, 0-d sr
        return [
            {"x": rng.standard_normal((1, 32)).astype(np.float32), "sr": np.array(sr, np.int64),
             "state": rng.standard_normal((2, 1, 32)).astype(np.float32)}
            for _ in range(n)
        ]  # fmt: skip

    prepared = onnxq.prepare(fp32)
    prepared.calibrate(runs(64, 16000), progress=False)
    q = prepared.convert()
    onnx.checker.check_model(q, full_check=True)
    counts = _count(q.graph)
    in_main = sum(n.op_type == "QuantizeLinear" for n in q.graph.node)
    assert counts["QuantizeLinear"] - in_main >= 4  # inside the 16 kHz branches
    quantized_mm = [n for n in prepared.report.nodes if n.op_type == "MatMul" and n.quantized]
    assert len(quantized_mm) >= 4
    notes = prepared.report.pass_notes
    assert any(
        "If 'by_rate': no calibration sample took its else_branch" in n for n in notes
    )  # the 8 kHz path
    held = runs(16, 16000)
    ref = np.concatenate([run_ort(fp32, h)[0] for h in held])
    got = np.concatenate([run_ort(q, h)[0] for h in held])
    assert wild.sqnr_db(ref, got) > 25
    eight_k = runs(8, 8000)  # the branch no sample took runs in float (behind the quantized input mix)
    ref = np.concatenate([run_ort(fp32, h)[0] for h in eight_k])
    assert wild.sqnr_db(ref, np.concatenate([run_ort(q, h)[0] for h in eight_k])) > 20
