"""``onnxq demo``: the bundled assets are present, small and consistent; the demo quantizes the model
without losing accuracy, shrinks it, prints its table, and needs neither torch nor scikit-learn."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from onnxq.cli import main
from onnxq.demo import CALIB_FILE, EVAL_FILE, MODEL_FILE, asset_path, format_demo, run_demo
from onnxq.inspect import inspect_model

REPO = Path(__file__).resolve().parents[1]
ASSETS = (MODEL_FILE, CALIB_FILE, EVAL_FILE)


@pytest.fixture(scope="module")
def result():
    return run_demo(runs=3)


def test_assets_are_small_and_consistent_with_the_model() -> None:
    sizes = {name: asset_path(name).stat().st_size for name in ASSETS}
    assert sum(sizes.values()) < 1024 * 1024
    model = onnx.load(str(asset_path(MODEL_FILE)))
    onnx.checker.check_model(model, full_check=True)
    (inp,) = model.graph.input
    dims = [d.dim_value or d.dim_param for d in inp.type.tensor_type.shape.dim]
    assert (inp.name, dims) == ("input", ["batch", 1, 8, 8])
    with np.load(asset_path(CALIB_FILE)) as z:
        assert z.files == ["input"]
        assert z["input"].shape == (64, 1, 8, 8) and z["input"].dtype == np.float32
    with np.load(asset_path(EVAL_FILE)) as z:
        images, labels = z["images"], z["labels"]
    assert images.shape == (360, 1, 8, 8) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    counts = np.bincount(labels)
    assert len(counts) == 10 and counts.min() >= 34 and counts.max() <= 38  # a stratified split


def test_assets_are_covered_by_package_data() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["onnxq"]
    for name in ASSETS:
        assert any(fnmatch.fnmatch(f"data/{name}", p) for p in patterns), (
            f"data/{name} would not be installed"
        )


def test_demo_keeps_accuracy_and_shrinks_model(result) -> None:
    assert result.num_calib == 64 and result.num_eval == 360
    assert result.fp32_accuracy >= 0.98
    assert abs(result.int8_accuracy - result.fp32_accuracy) <= 0.01
    assert result.agreement >= 0.99
    assert result.size_ratio <= 0.40
    assert result.fp32_latency_ms > 0 and result.int8_latency_ms > 0 and result.onnxq_latency_ms > 0
    assert result.onnxq_same_outputs and result.onnxq_lowered >= 7  # 4 convs, the add, both pools
    assert len(result.report.quantized) >= 10


def test_format_demo_prints_table_with_measured_numbers(result) -> None:
    text = format_demo(result)
    lines = text.splitlines()
    assert lines[0].startswith("onnxq demo: digits CNN") and f"qconfig {result.qconfig}" in lines[0]
    acc = next(line for line in lines if line.startswith("top-1 accuracy"))
    assert f"{100 * result.fp32_accuracy:.2f}%" in acc and f"{100 * result.int8_accuracy:.2f}%" in acc
    size = next(line for line in lines if line.startswith("model size"))
    assert f"{result.size_ratio:.2f}x" in size
    assert any(line.startswith("latency") and "median of 3 runs" in line for line in lines)
    ours = next(line for line in lines if line.startswith("onnxq kernels"))
    assert f"{result.onnxq_latency_ms:.2f} ms" in ours and "the same output bytes" in ours


def test_demo_command_saves_int8_model_on_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "digits.int8.onnx"
    assert main(["demo", "--runs", "2", "--qconfig", "qnnpack", "-o", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "qconfig qnnpack" in stdout and "top-1 accuracy" in stdout
    summary = inspect_model(out)
    assert summary.qdq_pairs > 5 and {"Conv", "Gemm"} <= {n.op_type for n in summary.quantized_nodes}


def test_demo_runs_in_seconds_without_torch_or_sklearn(tmp_path: Path) -> None:
    blocker = (
        "import sys\n"
        "for name in ('torch', 'sklearn', 'onnxscript'):\n"
        "    sys.modules[name] = None  # any import of them now raises ImportError\n"
        "from onnxq.cli import main\n"
        "sys.exit(main(['demo', '--runs', '5']))\n"
    )
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", blocker],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert "top-1 accuracy" in proc.stdout and "model size" in proc.stdout and "latency" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written to the working directory
    assert elapsed < 60


@pytest.mark.slow
def test_installed_package_runs_demo_outside_source_tree(tmp_path: Path) -> None:
    """``pip install .`` (here into a target directory, from a copy of the sources) ships the demo
    assets and the ``onnxq`` console script; the demo then runs from elsewhere without torch."""
    src = tmp_path / "src"
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(
            ".git", "build", "*.egg-info", "__pycache__", "*.so", "*.o", ".*cache", "tests"
        ),
    )
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    proc = subprocess.run(
        [*pip, "--target", str(site), str(src)], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in (site / "onnxq" / "data").iterdir()) == sorted(ASSETS)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    blocker = (
        "import runpy, sys\n"
        "for name in ('torch', 'sklearn', 'onnxscript'):\n"
        "    sys.modules[name] = None\n"
        "sys.argv = ['onnxq', 'demo', '--runs', '3']\n"
        f"runpy.run_path({str(site / 'bin' / 'onnxq')!r}, run_name='__main__')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", blocker],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(site)},
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "top-1 accuracy" in run.stdout
    assert (
        str(site)
        in subprocess.run(
            [sys.executable, "-c", "import onnxq; print(onnxq.__file__)"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**env, "PYTHONPATH": str(site)},
            timeout=120,
        ).stdout
    )


@pytest.mark.slow
def test_make_demo_assets_script_rebuilds_compatible_assets(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "make_demo_assets.py"),
            "--out",
            str(tmp_path),
            "--epochs",
            "4",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(ASSETS)
    new, old = onnx.load(str(tmp_path / MODEL_FILE)), onnx.load(str(asset_path(MODEL_FILE)))
    assert [i.type for i in new.graph.input] == [i.type for i in old.graph.input]
    assert [o.name for o in new.graph.output] == [o.name for o in old.graph.output]
    assert sorted(n.op_type for n in new.graph.node) == sorted(n.op_type for n in old.graph.node)
    for name in (CALIB_FILE, EVAL_FILE):  # the data split is deterministic: identical arrays
        with np.load(tmp_path / name) as a, np.load(asset_path(name)) as b:
            assert a.files == b.files
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key])
    accuracy = re.search(r"fp32 torch accuracy on 360 held-out digits: ([\d.]+)%", proc.stderr)
    assert accuracy is not None and float(accuracy.group(1)) > 90.0


def _readme_blocks(language: str) -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_readme_python_examples_run_on_the_demo_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = _readme_blocks("python")
    assert len(blocks) >= 2
    shutil.copy(asset_path(MODEL_FILE), tmp_path / "model.onnx")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert (tmp_path / "model.int8.onnx").is_file()
    assert inspect_model(tmp_path / "model.int8.onnx").qdq_pairs > 5


def test_readme_setup_commands_are_the_two_documented_ones() -> None:
    (setup,) = [b for b in _readme_blocks("sh") if "pip install" in b and "onnxq demo" in b]
    commands = [line.split("#")[0].strip() for line in setup.strip().splitlines()]
    test_command = 'pip install "torch==2.13.0" -e ".[dev,torch]" && python -m pytest'
    assert commands == ["pip install . && onnxq demo", test_command]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci
