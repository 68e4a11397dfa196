"""Progress: a redrawn bar on a TTY, log lines at ~10% steps elsewhere, silence when disabled."""

from __future__ import annotations

import io
import logging

import pytest

from onnxq.calibration.progress import Progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_is_drawn_in_place_on_a_tty() -> None:
    stream = _Tty()
    with Progress(8, "calibrating", stream=stream) as bar:
        for _ in range(8):
            bar.update(1)
    text = stream.getvalue()
    assert text.startswith("\r") and text.endswith("\n")
    last = text.rstrip("\n").split("\r")[-1]
    assert "calibrating [####################]  8/8 samples" in last


def test_render_shows_partial_bar_and_count() -> None:
    bar = Progress(40, "calibrating", stream=_Tty())
    bar.update(10)
    assert "[#####...............]  10/40 samples" in bar.render()


def test_without_total_the_count_is_shown() -> None:
    bar = Progress(None, "calibrating", stream=_Tty())
    bar.update(7)
    assert "calibrating  7 samples" in bar.render()


def test_non_tty_logs_each_tenth_once(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    logger = "onnxq.calibration.progress"
    with caplog.at_level(logging.INFO, logger=logger), Progress(100, "calib", stream=stream) as bar:
        for _ in range(100):
            bar.update(1)
    messages = [r.getMessage() for r in caplog.records]
    assert stream.getvalue() == ""
    assert [m.split(",")[0] for m in messages[:-1]] == [f"calib: {p}%" for p in range(10, 100, 10)]
    assert messages[-1].startswith("calib: done, 100/100 samples")


def test_disabled_progress_is_silent(caplog: pytest.LogCaptureFixture) -> None:
    stream = _Tty()
    with caplog.at_level(logging.INFO), Progress(5, "calib", stream=stream, enabled=False) as bar:
        bar.update(5)
    assert stream.getvalue() == "" and caplog.records == []
    assert bar.count == 5
