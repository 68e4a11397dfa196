"""Save a :class:`~onnxq.compare.report.ComparisonReport` as JSON and as HTML, atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

from onnxq.compare.html import render_html
from onnxq.compare.report import ComparisonReport
from onnxq.io import atomic_files, write_text_atomic


def to_json(report: ComparisonReport) -> str:
    """The report's JSON form (``schemas/compare.schema.json``)."""
    return json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n"


def write_json(report: ComparisonReport, path: str | os.PathLike[str]) -> Path:
    return write_text_atomic(path, to_json(report))


def write_html(report: ComparisonReport, path: str | os.PathLike[str], title: str = "onnxq compare") -> Path:
    return write_text_atomic(path, render_html(report, title))


def write_report(
    report: ComparisonReport,
    *,
    html: str | os.PathLike[str] | None = None,
    json_path: str | os.PathLike[str] | None = None,
    title: str = "onnxq compare",
) -> None:
    """Write the HTML page and the JSON file (those given) together: both or neither appear."""
    texts = [
        (p, t)
        for p, t in ((html, lambda: render_html(report, title)), (json_path, lambda: to_json(report)))
        if p
    ]
    with atomic_files(*(p for p, _ in texts)) as staged:
        for tmp, (_, text) in zip(staged, texts, strict=True):
            tmp.write_text(text(), encoding="utf-8")


__all__ = ["to_json", "write_html", "write_json", "write_report"]
