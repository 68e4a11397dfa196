"""Bad input never loses data: every output path is checked against every input and other output,
symbolic links included; nothing is written when a check fails."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from onnxq.cli import main
from onnxq.demo import asset_path


@pytest.fixture
def work(tmp_path: Path) -> Path:
    shutil.copy(asset_path("digits_cnn.onnx"), tmp_path / "model.onnx")
    shutil.copy(asset_path("digits_calib.npz"), tmp_path / "calib.npz")
    (tmp_path / "data").mkdir()
    shutil.copy(asset_path("digits_calib.npz"), tmp_path / "data" / "a.npz")
    return tmp_path


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (
            ["-o", "out.onnx", "--calib", "calib.npz", "--report", "model.onnx"],
            "report 'model.onnx' is the input model",
        ),
        (
            ["-o", "out.onnx", "--calib", "calib.npz", "--report", "out.onnx"],
            "report 'out.onnx' is the output",
        ),
        (["-o", "calib.npz", "--calib", "calib.npz"], "output 'calib.npz' is the calibration data"),
        (["-o", "data/a.npz", "--calib", "data"], "output 'data/a.npz' is the calibration data"),
        (["-o", "link.onnx", "--calib", "calib.npz"], "output 'link.onnx' is the input model"),
        (
            ["-o", "out.onnx", "--calib", "calib.npz", "--report", "calib.npz"],
            "report 'calib.npz' is the calibration",
        ),
        (
            ["-o", "m", "--calib", "calib.npz", "--report", "m.data"],
            "report 'm.data' is the output's external data",
        ),
    ],
)
def test_an_output_that_is_an_input_or_another_output_is_refused(
    work: Path,
    extra: list[str],
    needle: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(work)
    os.symlink(work / "model.onnx", work / "link.onnx")
    before = _snapshot(work)
    code = main(["quantize", "model.onnx", *extra, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and needle in err, err
    assert _snapshot(work) == before  # nothing written, nothing replaced


def test_sigterm_during_calibration_removes_every_temporary_file(work: Path, tmp_path_factory) -> None:
    import signal
    import subprocess
    import sys
    import time

    tmp = tmp_path_factory.mktemp("tmpdir")
    many = work / "many"
    many.mkdir()
    for i in range(300):  # enough runs that calibration is still going when the signal comes
        os.link(work / "calib.npz", many / f"{i:03d}.npz")
    env = {**os.environ, "TMPDIR": str(tmp)}
    # onnxruntime keeps a file of its own in the temporary directory: only what onnxq makes counts
    subprocess.run([sys.executable, "-c", "import onnxruntime"], env=env, check=True)
    before = set(tmp.iterdir())
    cmd = [sys.executable, "-m", "onnxq", "quantize", "model.onnx", "-o", "out.onnx", "--calib", "many"]
    proc = subprocess.Popen([*cmd, "--no-progress"], cwd=work, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(tmp.glob("onnxq-session-*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, "calibration ended before the signal"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and err.strip().endswith("onnxq: terminated"), err
    assert set(tmp.iterdir()) == before
    assert sorted(p.name for p in work.iterdir()) == ["calib.npz", "data", "many", "model.onnx"]


def test_sigterm_during_save_leaves_no_partial_files(
    work: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import signal

    import onnx

    real_save = onnx.save_model

    def save_then_terminated(*args, **kwargs):  # type: ignore[no-untyped-def]
        real_save(*args, **kwargs)  # the temporary file is complete
        os.kill(os.getpid(), signal.SIGTERM)  # and the signal comes before it is moved into place

    monkeypatch.setattr(onnx, "save_model", save_then_terminated)
    monkeypatch.chdir(work)
    before = _snapshot(work)
    code = main(
        [
            "quantize",
            "model.onnx",
            "-o",
            "out.onnx",
            "--calib",
            "calib.npz",
            "--report",
            "r.json",
            "--no-progress",
        ]
    )
    assert code == 143 and "onnxq: terminated" in capsys.readouterr().err
    assert _snapshot(work) == before
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler was restored


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("flag", ["--calib", "--qconfig"])
def test_a_fifo_as_input_is_refused_without_blocking(
    work: Path, flag: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(work)
    os.mkfifo(work / "pipe")
    extra = ["--calib", "calib.npz"] if flag == "--qconfig" else []
    assert main(["quantize", "model.onnx", "-o", "out.onnx", flag, "pipe", *extra, "--no-progress"]) == 2
    assert "not a regular file" in capsys.readouterr().err
    assert not (work / "out.onnx").exists()
