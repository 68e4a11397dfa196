"""The ``onnxq`` command line: every bad input of the foundation issue exits 2 with one line naming
the file or tensor and leaves no file behind; the success paths write a working int8 model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from onnxq.cli import main
from onnxq.demo import asset_path
from onnxq.inspect import inspect_model
from onnxq.passes.uint8_twin import exact_on_onnxruntime

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A directory holding the bundled digits model and its calibration data."""
    shutil.copy(asset_path("digits_cnn.onnx"), tmp_path / "model.onnx")
    shutil.copy(asset_path("digits_calib.npz"), tmp_path / "calib.npz")
    return tmp_path


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_error_line(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got:\n{err}"
    assert lines[0].startswith("onnxq: error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


def _files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def _calib() -> np.ndarray:
    with np.load(asset_path("digits_calib.npz")) as z:
        return z["input"]


# ---------------------------------------------- bad input: exit 2, one line, nothing written


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("text.onnx", b"this is not a model\n", "not a valid ONNX model"),
        ("zeros.onnx", bytes(4096), "not a valid ONNX model"),
    ],
)
def test_quantize_fails_cleanly_when_model_is_not_onnx(
    work: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes, needle: str
) -> None:
    (work / name).write_bytes(content)
    before = _files(work)
    code, out, err = _run(
        ["quantize", work / name, "-o", work / "out.onnx", "--calib", work / "calib.npz"], capsys
    )
    _assert_one_error_line(code, err, name, needle)
    assert _files(work) == before
    assert out == ""


def test_quantize_fails_cleanly_when_model_is_truncated(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = (work / "model.onnx").read_bytes()
    (work / "cut.onnx").write_bytes(data[: len(data) // 2])
    before = _files(work)
    code, _, err = _run(
        ["quantize", work / "cut.onnx", "-o", work / "out.onnx", "--calib", work / "calib.npz"], capsys
    )
    _assert_one_error_line(code, err, "cut.onnx", "truncated")
    assert _files(work) == before


def test_quantize_fails_cleanly_when_model_file_missing(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(
        ["quantize", work / "nope.onnx", "-o", work / "out.onnx", "--calib", work / "calib.npz"], capsys
    )
    _assert_one_error_line(code, err, "nope.onnx", "does not exist")
    assert not (work / "out.onnx").exists()


def test_quantize_fails_cleanly_when_external_data_missing(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = onnx.load(str(work / "model.onnx"))
    onnx.save_model(
        model,
        str(work / "ext.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="ext.weights",
        size_threshold=0,
    )
    (work / "ext.weights").unlink()
    before = _files(work)
    code, _, err = _run(
        ["quantize", work / "ext.onnx", "-o", work / "out.onnx", "--calib", work / "calib.npz"], capsys
    )
    _assert_one_error_line(code, err, "ext.onnx", "ext.weights", "not found")
    assert _files(work) == before


@pytest.mark.parametrize(
    ("case", "arrays", "needles"),
    [
        ("name", {"image": _calib()}, ("'input'", "missing")),
        ("extra-name", {"input": _calib(), "mask": _calib()}, ("'mask'", "unexpected")),
        ("rank", {"input": _calib()[:, 0]}, ("'input'", "rank 4", "(64, 8, 8)")),
        ("shape", {"input": np.zeros((4, 1, 9, 8), np.float32)}, ("'input'", "1, 8, 8", "(4, 1, 9, 8)")),
        ("dtype", {"input": _calib().astype(np.float64)}, ("'input'", "float32", "float64")),
        ("empty", {"input": _calib()[:0]}, ("empty",)),
    ],
)
def test_quantize_fails_cleanly_when_calibration_data_mismatches(
    work: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    arrays: dict[str, np.ndarray],
    needles: tuple[str, ...],
) -> None:
    np.savez(work / "bad.npz", **arrays)
    before = _files(work)
    code, _, err = _run(
        ["quantize", work / "model.onnx", "-o", work / "out.onnx", "--calib", work / "bad.npz"], capsys
    )
    _assert_one_error_line(code, err, *needles)
    assert _files(work) == before


@pytest.mark.parametrize(
    ("make", "needles"),
    [
        (lambda d: d / "missing.npz", ("missing.npz", "not found")),
        (lambda d: (d / "nothing").mkdir() or d / "nothing", ("nothing", "no .npz")),
        (lambda d: (d / "calib.txt").write_text("1 2 3") and d / "calib.txt", ("calib.txt", ".npz")),
        (lambda d: (d / "broken.npz").write_bytes(b"PK\x03\x04junk") and d / "broken.npz", ("broken.npz",)),
    ],
    ids=["missing", "empty-dir", "not-npz", "corrupt-npz"],
)
def test_quantize_fails_cleanly_when_calibration_source_unusable(
    work: Path, capsys: pytest.CaptureFixture[str], make, needles: tuple[str, ...]
) -> None:
    source = make(work)
    before = _files(work)
    code, _, err = _run(["quantize", work / "model.onnx", "-o", work / "out.onnx", "--calib", source], capsys)
    _assert_one_error_line(code, err, *needles)
    assert _files(work) == before


@pytest.mark.parametrize(
    ("qconfig", "needles"),
    [
        ("tpu", ("unknown qconfig backend 'tpu'",)),
        ("bad.json", ("bad.json", "$.global.activation.bits: unknown key")),
        ("type.json", ("type.json", "$.op_types.Conv.weight.per_channel: expected bool")),
        ("syntax.json", ("syntax.json", "not valid JSON")),
        ("absent.json", ("absent.json", "cannot read")),
    ],
)
def test_quantize_fails_cleanly_when_qconfig_invalid(
    work: Path, capsys: pytest.CaptureFixture[str], qconfig: str, needles: tuple[str, ...]
) -> None:
    w = {"dtype": "int8", "symmetric": True}
    (work / "bad.json").write_text(
        json.dumps({"version": 1, "global": {"activation": {"bits": 8}, "weight": w}})
    )
    (work / "type.json").write_text(
        json.dumps(
            {"version": 1, "op_types": {"Conv": {"activation": {}, "weight": {**w, "per_channel": "yes"}}}}
        )
    )
    (work / "syntax.json").write_text('{"version": 1,')
    before = _files(work)
    arg = qconfig if qconfig == "tpu" else work / qconfig
    code, _, err = _run(
        [
            "quantize",
            work / "model.onnx",
            "-o",
            work / "out.onnx",
            "--calib",
            work / "calib.npz",
            "--qconfig",
            arg,
        ],
        capsys,
    )
    _assert_one_error_line(code, err, *needles)
    assert _files(work) == before


def test_quantize_fails_before_work_when_output_directory_missing(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = work / "no" / "such" / "out.onnx"
    code, _, err = _run(
        ["quantize", work / "model.onnx", "-o", target, "--calib", work / "calib.npz"], capsys
    )
    _assert_one_error_line(code, err, str(target.parent), "does not exist")
    code, _, err = _run(
        [
            "quantize",
            work / "model.onnx",
            "-o",
            work / "o.onnx",
            "--calib",
            work / "calib.npz",
            "--report",
            target,
        ],
        capsys,
    )
    _assert_one_error_line(code, err, "report", "does not exist")
    assert not (work / "o.onnx").exists()


def test_quantize_fails_before_work_when_output_is_a_directory(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (work / "outdir").mkdir()
    code, _, err = _run(
        ["quantize", work / "model.onnx", "-o", work / "outdir", "--calib", work / "calib.npz"], capsys
    )
    _assert_one_error_line(code, err, "outdir", "is a directory")
    argv = ["quantize", work / "model.onnx", "-o", work / "o.onnx", "--calib", work / "calib.npz"]
    code, _, err = _run([*argv, "--report", work / "outdir"], capsys)
    _assert_one_error_line(code, err, "report", "is a directory")
    assert list((work / "outdir").iterdir()) == []
    assert not (work / "o.onnx").exists()


def test_quantize_refuses_to_overwrite_its_input(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    original = (work / "model.onnx").read_bytes()
    code, _, err = _run(
        ["quantize", work / "model.onnx", "-o", work / "model.onnx", "--calib", work / "calib.npz"], capsys
    )
    _assert_one_error_line(code, err, "is the input model")
    assert (work / "model.onnx").read_bytes() == original


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ([], "required"),
        (["frobnicate"], "invalid choice"),
        (["quantize", "m.onnx"], "-o/--output"),
        (["quantize", "m.onnx", "-o", "x.onnx", "--calib", "c.npz", "--activation-dtype", "int4"], "int4"),
        (["demo", "--runs", "0"], "--runs must be at least 1"),
    ],
)
def test_usage_error_is_one_line_with_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(argv, capsys)
    _assert_one_error_line(code, err, needle)


def test_error_exit_through_python_dash_m_has_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_text("not a model")
    proc = subprocess.run(
        [sys.executable, "-m", "onnxq", "inspect", str(tmp_path / "m.onnx")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("onnxq: error: model file") and "m.onnx" in proc.stderr


# ---------------------------------------------------------------- success paths


def _accuracy(model: Path | bytes) -> float:
    with np.load(asset_path("digits_eval.npz")) as z:
        images, labels = z["images"], z["labels"]
    session = ort.InferenceSession(
        str(model) if isinstance(model, Path) else model, providers=["CPUExecutionProvider"]
    )
    return float(np.mean(session.run(None, {"input": images})[0].argmax(1) == labels))


def test_quantize_writes_working_int8_model_and_report(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, report = work / "model.int8.onnx", work / "report.json"
    code, stdout, err = _run(
        [
            "quantize",
            work / "model.onnx",
            "-o",
            out,
            "--calib",
            work / "calib.npz",
            "--report",
            report,
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, err
    assert "Traceback" not in err
    assert _files(work) == {"model.onnx", "calib.npz", "model.int8.onnx", "report.json"}
    assert stdout.startswith(f"wrote {out} (")
    onnx.checker.check_model(onnx.load(str(out)))
    assert out.stat().st_size <= 0.40 * (work / "model.onnx").stat().st_size
    fp32_acc, int8_acc = _accuracy(work / "model.onnx"), _accuracy(out)
    assert fp32_acc > 0.97
    assert abs(fp32_acc - int8_acc) <= 0.01
    summary = inspect_model(out)
    assert {n.op_type for n in summary.quantized_nodes} >= {"Conv", "Gemm", "Add", "MaxPool"}
    assert summary.constant_bytes.get("int8", 0) > 10 * summary.constant_bytes.get("float32", 0)
    data = json.loads(report.read_text())
    assert data["num_samples"] == 64
    assert data["op_counts"]["Conv"] == {"quantized": 4, "float": 0}
    assert {n["name"] for n in data["nodes"]} >= {"/stem/stem.0/Conv", "/fc/Gemm"}


def test_quantize_per_tensor_and_int8_activations_change_qparams(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, flagged = work / "base.onnx", work / "flagged.onnx"
    common = ["--calib", work / "calib.npz", "--no-progress"]
    assert _run(["quantize", work / "model.onnx", "-o", base, *common], capsys)[0] == 0
    code, _, err = _run(
        [
            "quantize",
            work / "model.onnx",
            "-o",
            flagged,
            *common,
            "--per-tensor",
            "--activation-dtype",
            "int8",
        ],
        capsys,
    )
    assert code == 0, err
    base_q, flag_q = inspect_model(base).qparams, inspect_model(flagged).qparams
    assert any(
        q.kind == "constant" and q.dtype == "int8" and q.axis == 0 and len(q.scale) == 32 for q in base_q
    )
    weights = [q for q in flag_q if q.kind == "constant" and q.dtype == "int8"]
    assert len(weights) == 5 and all(q.axis is None and len(q.scale) == 1 for q in weights)
    acts = [q for q in flag_q if q.kind == "activation"]
    assert acts and all(q.dtype == "int8" and q.zero_point == (0,) for q in acts)
    assert all(q.dtype == "uint8" for q in base_q if q.kind == "activation")
    assert abs(_accuracy(flagged) - _accuracy(work / "model.onnx")) <= 0.02


def test_quantize_accepts_a_directory_of_npz_and_a_json_qconfig(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calib_dir = work / "calib"
    calib_dir.mkdir()
    x = _calib()
    for i in range(4):
        np.savez(calib_dir / f"part{i}.npz", input=x[16 * i : 16 * (i + 1)])
    cfg = {"version": 1, "global": "qnnpack", "op_types": {"Gemm": None}}
    (work / "q.cfg").write_text(json.dumps(cfg))  # any existing file is read as JSON
    out, report = work / "q.onnx", work / "r.json"
    code, _, err = _run(
        ["quantize", work / "model.onnx", "-o", out, "--calib", calib_dir, "--qconfig", work / "q.cfg",
         "--report", report, "--no-progress"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(report.read_text())
    assert data["num_samples"] == 64
    assert data["op_counts"]["Gemm"] == {"quantized": 0, "float": 1}
    assert [n.name for n in inspect_model(out).float_nodes if n.op_type == "Gemm"] == ["/fc/Gemm"]


def test_quantize_warns_once_and_succeeds_when_calibration_has_nan(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = _calib().copy()
    x[0, 0, 0, 0] = np.nan
    x[1, 0, 3, 3] = np.inf
    np.savez(work / "nan.npz", input=x)
    out, report = work / "out.onnx", work / "r.json"
    code, _, err = _run(
        [
            "quantize",
            work / "model.onnx",
            "-o",
            out,
            "--calib",
            work / "nan.npz",
            "--report",
            report,
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "NaN" in line]
    assert len(warnings) == 1 and warnings[0].startswith("onnxq: warning: ")
    nonfinite = json.loads(report.read_text())["nonfinite"]
    assert nonfinite.get("input") == 2
    assert abs(_accuracy(out) - _accuracy(work / "model.onnx")) <= 0.01


def test_quantize_leaves_unreached_tensor_float_and_reports_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    h = onnx.helper
    graph = h.make_graph(
        [
            h.make_node("MatMul", ["a", "wa"], ["ya"], name="mm_a"),
            h.make_node("MatMul", ["b", "wb"], ["yb"], name="mm_b"),
        ],
        "two",
        [h.make_tensor_value_info(n, onnx.TensorProto.FLOAT, ["N", 16]) for n in ("a", "b")],
        [h.make_tensor_value_info(n, onnx.TensorProto.FLOAT, ["N", 8]) for n in ("ya", "yb")],
        [
            onnx.numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32), n)
            for n in ("wa", "wb")
        ],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp_path / "two.onnx"))
    np.savez(
        tmp_path / "c.npz",
        a=rng.standard_normal((8, 16)).astype(np.float32),
        b=np.full((8, 16), np.nan, np.float32),
    )
    code, stdout, err = _run(
        ["quantize", tmp_path / "two.onnx", "-o", tmp_path / "q.onnx", "--calib", tmp_path / "c.npz",
         "--qconfig", "qnnpack", "--report", tmp_path / "r.json", "--no-progress"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    data = json.loads((tmp_path / "r.json").read_text())
    assert "b" in data["unreached"]
    assert {n["name"]: n["quantized"] for n in data["nodes"]} == {"mm_a": True, "mm_b": False}
    assert "b" in stdout  # the printed report names the unreached tensor
    summary = inspect_model(tmp_path / "q.onnx")
    assert [n.name for n in summary.quantized_nodes] == ["mm_a"]
    assert [n.name for n in summary.float_nodes] == ["mm_b"]


def test_quantize_real_exported_model_with_each_exporter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], export_torch, torch_exporter
) -> None:
    torch = pytest.importorskip("torch")
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5)
    )
    model = export_torch(net, (torch.randn(2, 3, 6, 6),), *torch_exporter)
    onnx.save(model, str(tmp_path / "m.onnx"))
    name = model.graph.input[0].name
    x = np.random.default_rng(0).standard_normal((32, 3, 6, 6)).astype(np.float32)
    np.savez(tmp_path / "c.npz", **{name: x})
    argv = [
        "quantize",
        tmp_path / "m.onnx",
        "-o",
        tmp_path / "q.onnx",
        "--calib",
        tmp_path / "c.npz",
        "--no-progress",
    ]
    code, _, err = _run(argv, capsys)
    assert code == 0, err
    summary = inspect_model(tmp_path / "q.onnx")
    assert {"Conv", "Gemm"} <= {n.op_type for n in summary.quantized_nodes}
    assert "BatchNormalization" not in summary.op_counts
    feeds = {name: x[:2]}
    ref = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds)[
        0
    ]
    exact = exact_on_onnxruntime(onnx.load(str(tmp_path / "q.onnx"))).SerializeToString()
    got = ort.InferenceSession(exact, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert got.shape == ref.shape
    assert np.max(np.abs(got - ref)) <= 0.1 * np.max(np.abs(ref))


def test_inspect_prints_summary_and_json(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["inspect", work / "model.onnx"], capsys)
    assert code == 0, err
    assert "13 compute: 0 quantized, 13 float" in out
    code, out, _ = _run(["inspect", work / "model.onnx", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["op_counts"]["Conv"] == 4 and data["qdq_pairs"] == 0


def test_inspect_fails_cleanly_on_truncated_model(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = (work / "model.onnx").read_bytes()
    (work / "cut.onnx").write_bytes(data[:1000])
    code, out, err = _run(["inspect", work / "cut.onnx"], capsys)
    _assert_one_error_line(code, err, "cut.onnx")
    assert out == ""


def test_quantize_writes_external_data_on_request(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = work / "ext.int8.onnx"
    argv = ["quantize", work / "model.onnx", "-o", out, "--calib", work / "calib.npz", "--external-data"]
    code, stdout, err = _run([*argv, "--no-progress"], capsys)
    assert code == 0, err
    assert stdout.startswith(f"wrote {out} (")
    data = work / "ext.int8.onnx.data"
    assert data.is_file() and data.stat().st_size > 30_000  # the int8 weights
    assert out.stat().st_size < data.stat().st_size
    assert inspect_model(out).file_bytes == out.stat().st_size + data.stat().st_size
    assert abs(_accuracy(out) - _accuracy(work / "model.onnx")) <= 0.01


def test_failed_run_leaves_existing_output_untouched(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "out.onnx").write_bytes(b"previous result")
    np.savez(work / "bad.npz", input=_calib().astype(np.float64))
    code, _, err = _run(
        ["quantize", work / "model.onnx", "-o", work / "out.onnx", "--calib", work / "bad.npz"], capsys
    )
    _assert_one_error_line(code, err, "float64")
    assert (work / "out.onnx").read_bytes() == b"previous result"


def test_failed_save_leaves_neither_model_nor_report(
    work: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnxq.io

    def disk_full(model: object, path: Path, **kwargs: object) -> None:
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(onnxq.io, "save_model", disk_full)
    before = _files(work)
    argv = ["quantize", work / "model.onnx", "-o", work / "out.onnx", "--calib", work / "calib.npz"]
    code, _, err = _run([*argv, "--report", work / "r.json", "--no-progress"], capsys)
    _assert_one_error_line(code, err, "out.onnx", "No space left on device")
    assert _files(work) == before


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_flag_logs_steps_before_or_after_subcommand(
    work: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    args = [
        "quantize",
        work / "model.onnx",
        "-o",
        work / "o.onnx",
        "--calib",
        work / "calib.npz",
        "--no-progress",
    ]
    argv = ["-v", *args] if where == "before" else [*args, "-v"]
    code, _, err = _run(argv, capsys)
    assert code == 0, err
    info = [line for line in err.splitlines() if line.startswith("onnxq: info: ")]
    assert any("converted" in line for line in info) and any("saved model" in line for line in info)
    code, _, err = _run(["quantize", work / "model.onnx", "-o", work / "p.onnx", *args[4:]], capsys)
    assert code == 0 and "onnxq: info:" not in err


def test_cli_restores_logging_so_later_warnings_still_propagate(
    work: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    logger = logging.getLogger("onnxq")
    before = (logger.handlers[:], logger.level, logger.propagate)
    assert _run(["-v", "inspect", work / "model.onnx"], capsys)[0] == 0
    assert (logger.handlers, logger.level, logger.propagate) == before
    with caplog.at_level(logging.WARNING, logger="onnxq"):
        logging.getLogger("onnxq.calibration.engine").warning("after the CLI")
    assert [r.getMessage() for r in caplog.records] == ["after the CLI"]


# ---------------------------------------------- onnxq's kernels: --format onnxq and `onnxq lower`


def test_quantize_format_onnxq_writes_the_qdq_models_bytes_on_our_kernels(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from onnxq.runtime import InferenceSession

    base = ["quantize", work / "model.onnx", "--calib", work / "calib.npz", "--no-progress"]
    assert _run([*base, "-o", work / "qdq.onnx"], capsys)[0] == 0
    code, out, _ = _run([*base, "-o", work / "ours.onnx", "--format", "onnxq"], capsys)
    assert code == 0 and "onnxq kernels: 9 node(s) lowered" in out
    ours = onnx.load(str(work / "ours.onnx"))
    assert sum(n.domain == "ai.onnxq" and n.op_type == "QLinearConv" for n in ours.graph.node) == 4
    x = {"input": _calib()[:16]}
    exact = exact_on_onnxruntime(onnx.load(str(work / "qdq.onnx"))).SerializeToString()  # see test_lowered
    want = ort.InferenceSession(exact, providers=["CPUExecutionProvider"]).run(None, x)
    got = InferenceSession(str(work / "ours.onnx"), providers=["CPUExecutionProvider"]).run(None, x)
    np.testing.assert_array_equal(got[0], want[0])
    code, out, _ = _run(["lower", work / "qdq.onnx", "-o", work / "lowered.onnx"], capsys)
    assert code == 0 and "9 node(s) lowered" in out
    assert (work / "lowered.onnx").read_bytes() == (work / "ours.onnx").read_bytes()


def test_quantize_format_qdq_uint8_holds_no_int8_and_gives_the_exact_bytes_on_onnxruntime(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["quantize", work / "model.onnx", "--calib", work / "calib.npz", "--no-progress"]
    assert _run([*base, "-o", work / "qdq.onnx"], capsys)[0] == 0
    assert _run([*base, "-o", work / "u8.onnx", "--format", "qdq-uint8"], capsys)[0] == 0
    qdq, u8 = onnx.load(str(work / "qdq.onnx")), onnx.load(str(work / "u8.onnx"))
    assert any(t.data_type == onnx.TensorProto.INT8 for t in qdq.graph.initializer)
    assert not any(t.data_type == onnx.TensorProto.INT8 for t in u8.graph.initializer)
    assert [n.op_type for n in u8.graph.node] == [n.op_type for n in qdq.graph.node]
    x = {"input": _calib()[:16]}
    want = ort.InferenceSession(exact_on_onnxruntime(qdq).SerializeToString()).run(None, x)[0]
    got = ort.InferenceSession(str(work / "u8.onnx")).run(None, x)[0]
    np.testing.assert_array_equal(got, want)  # exact on every CPU, saturating or not
    assert _accuracy(work / "u8.onnx") >= _accuracy(work / "qdq.onnx") - 0.01


def test_quantize_says_where_onnxruntime_would_saturate_and_what_to_do(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from onnxq.runtime import ort_u8s8_saturates

    base = ["quantize", work / "model.onnx", "--calib", work / "calib.npz", "--no-progress"]
    code, out, _ = _run([*base, "-o", work / "qdq.onnx"], capsys)
    assert code == 0 and ("--format qdq-uint8" in out) == ort_u8s8_saturates()
    code, out, _ = _run([*base, "-o", work / "u8.onnx", "--format", "qdq-uint8"], capsys)
    assert code == 0 and "saturation" not in out


def test_lower_refuses_to_overwrite_its_input_and_a_non_model(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (work / "model.onnx").read_bytes()
    code, _, err = _run(["lower", work / "model.onnx", "-o", work / "model.onnx"], capsys)
    _assert_one_error_line(code, err, "is the input model")
    assert (work / "model.onnx").read_bytes() == before
    code, _, err = _run(["lower", work / "calib.npz", "-o", work / "out.onnx"], capsys)
    _assert_one_error_line(code, err, "not a valid ONNX model")
    assert not (work / "out.onnx").exists()
