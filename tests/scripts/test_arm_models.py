"""scripts/arm_models.py and scripts/arm_runner.py: the judging half of scripts/arm_check.sh (the
qemu runs themselves belong to that script, not to the test suite)."""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from tests.script_modules import load_script

arm_models = load_script("arm_models")
arm_runner = load_script("arm_runner")


def _model(last_op: str | None) -> onnx.ModelProto:
    """x (uint8) -> DequantizeLinear (scale 0.5) -> ``last_op`` (none, Relu or Identity) -> y."""
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["d" if last_op else "y"])]
    if last_op:
        nodes.append(helper.make_node(last_op, ["d"], ["y"]))
    inits = [
        helper.make_tensor("s", TensorProto.FLOAT, [], [0.5]),
        helper.make_tensor("z", TensorProto.UINT8, [], [3]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_difference_counts_elements_and_output_steps() -> None:
    a = {"0/0": np.array([1.0, 2.0, 3.0], np.float32), "1/0": np.array([0.5], np.float32)}
    assert arm_models.difference(a, {k: v.copy() for k, v in a.items()}, [0.5])["same_bytes"]
    b = {"0/0": np.array([1.0, 3.0, 3.0], np.float32), "1/0": np.array([0.5], np.float32)}
    d = arm_models.difference(a, b, [0.5])
    assert (d["same_bytes"], d["elements_differing"], d["elements"], d["max_steps"]) == (False, 1, 4, 2.0)
    assert arm_models.difference(a, b, [None])["max_steps"] is None
    as_float64 = {k: v.astype(np.float64) for k, v in a.items()}
    assert not arm_models.difference(a, as_float64, [0.5])["same_bytes"]  # same values, other bytes


def test_output_steps_and_float_ops_come_from_the_graph() -> None:
    exact, relu = _model("Identity"), _model("Relu")
    assert arm_models.float_ops(exact) == [] and arm_models.float_ops(relu) == ["Relu"]
    assert arm_models.output_steps(_model(None)) == [0.5]
    assert arm_models.output_steps(relu) == [None]


def _work(tmp_path: Path, float_ops: list[str], arm_output: np.ndarray) -> Path:
    work = tmp_path / "work"
    work.mkdir(parents=True)
    onnx.save(_model(None), str(work / "m.qdq.onnx"))
    entry = {"name": "m", "inputs": "m.inputs.npz", "files": {"onnxq": "m.onnxq.onnx", "qdq": "m.qdq.onnx"}}
    (work / "manifest.json").write_text(json.dumps({"models": [{**entry, "float_ops": float_ops}]}))
    want = np.array([1.0, 2.0], np.float32)
    for sub, kind, y in (
        ("x86-onnxq", "onnxq", want),
        ("reference", "qdq", want),
        ("arm", "onnxq", arm_output),
        ("arm", "qdq", want),
    ):
        (work / sub).mkdir(exist_ok=True)
        np.savez(work / sub / f"m.{kind}.npz", **{"0/0": y})
    return work


def test_compare_fails_when_a_model_exact_by_design_differs_on_arm(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    work = _work(tmp_path, [], np.array([1.0, 2.5], np.float32))
    assert arm_models.compare(work, ["arm"]) == 1
    assert "m: onnxq arm vs x86: not the same bytes" in capsys.readouterr().out
    summary = json.loads((work / "summary.json").read_text())
    assert summary["models"]["m"]["onnxq_arm_vs_x86"]["max_steps"] == 1.0


def test_compare_reports_but_does_not_fail_a_difference_behind_float_ops(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert arm_models.compare(_work(tmp_path, ["HardSwish"], np.array([1.0, 2.5], np.float32)), ["arm"]) == 0
    assert "| m | 1/2 differ, 1 steps" in capsys.readouterr().out
    assert arm_models.compare(_work(tmp_path / "b", [], np.array([1.0, 2.0], np.float32)), ["arm"]) == 0


def test_runner_reads_feeds_by_run_and_finds_a_librarys_code(tmp_path: Path) -> None:
    from onnxq.kernels.custom_ops import library_path

    np.savez(tmp_path / "in.npz", **{"1/x": np.ones(2), "0/x": np.zeros(2), "0/y": np.ones(1)})
    with np.load(tmp_path / "in.npz") as npz:
        feeds = arm_runner.feeds_of(npz)
    assert [sorted(f) for f in feeds] == [["x", "y"], ["x"]] and feeds[0]["x"][0] == 0.0
    ctypes.CDLL(library_path())
    lo, hi = arm_runner.code_range(library_path())
    assert 0 < lo < hi
    assert arm_runner.code_range(str(tmp_path / "in.npz")) is None
