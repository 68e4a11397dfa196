"""scripts/render_report.py: a compare report rendered to PNG when Chromium is present; clear
refusals otherwise."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "render_report.py"


def _load():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("render_report", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["render_report"] = module
    spec.loader.exec_module(module)
    return module


def _report(tmp_path: Path) -> Path:
    import onnx

    import onnxq
    from onnxq.compare import compare
    from onnxq.compare.writers import write_report
    from onnxq.demo import asset_path

    x = np.load(asset_path("digits_calib.npz"))["input"][:8]
    fp32 = Path(asset_path("digits_cnn.onnx"))
    qdq = tmp_path / "q.onnx"
    onnx.save(onnxq.quantize_static(fp32, [{"input": x}], progress=False), qdq)
    html = tmp_path / "report.html"
    write_report(compare(fp32, qdq, [{"input": x}]), html=html)
    return html


def test_renders_a_report_to_png(tmp_path: Path) -> None:
    render_report = _load()
    if render_report.find_browser() is None:
        pytest.skip("no headless Chromium on this machine")
    html = _report(tmp_path)
    png = tmp_path / "report.png"
    assert render_report.main([str(html), str(png), "--width", "800", "--height", "600"]) == 0
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (800, 600)
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".png"] == ["report.png"]  # no temp left


def test_refuses_a_missing_report_and_overwriting_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    render_report = _load()
    assert render_report.main([str(tmp_path / "missing.html"), str(tmp_path / "x.png")]) == 2
    html = tmp_path / "r.html"
    html.write_text("<html></html>")
    assert render_report.main([str(html), str(html)]) == 2
    assert html.read_text() == "<html></html>"
    assert "choose another file" in capsys.readouterr().err


def test_without_a_browser_exits_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    render_report = _load()
    monkeypatch.setattr(render_report, "find_browser", lambda: None)
    html = tmp_path / "r.html"
    html.write_text("<html></html>")
    assert render_report.main([str(html), str(tmp_path / "r.png")]) == render_report.NO_BROWSER
    assert not (tmp_path / "r.png").exists()
