"""``onnxq compare`` on the command line: the HTML page (parsed), the JSON (schema), bad input."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import onnx


class _Rows(HTMLParser):
    """Counts the body rows of the ranking table and any external reference."""

    def __init__(self) -> None:
        super().__init__()
        self.in_ranking, self.in_body, self.rows, self.external = False, False, 0, []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table" and a.get("id") == "ranking":
            self.in_ranking = True
        self.in_body = self.in_body or (self.in_ranking and tag == "tbody")
        if self.in_body and tag == "tr":
            self.rows += 1
        if tag == "script" or any(k in ("src", "href") for k in a):
            self.external.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.in_ranking = self.in_body = False


def test_html_has_one_row_per_layer_and_json_validates(
    digits_qdq, onnxq_cli, json_schema, tmp_path: Path
) -> None:
    fp32, qdq, calib = digits_qdq("onnxruntime")
    html, js = tmp_path / "r.html", tmp_path / "r.json"
    code, out, err = onnxq_cli(
        "compare", fp32, qdq, "--calib", calib, "--html", html, "--json", js, "--limit", 8
    )
    assert code == 0, err
    assert "most error introduced by" in out
    doc = json.loads(js.read_text())
    json_schema("compare.schema.json").validate(doc)
    assert doc["num_samples"] == 8
    parser = _Rows()
    parser.feed(html.read_text())
    assert parser.rows == len(doc["layers"]) and not parser.external
    assert html.read_text().count("<svg") == len(doc["layers"]) + 1  # the bars, one histogram per layer


def test_bad_input_is_one_line_exit_2_and_writes_nothing(digits_qdq, onnxq_cli, tmp_path: Path) -> None:
    fp32, qdq, calib = digits_qdq("onnxq")
    other = onnx.load(qdq)
    other.graph.input[0].name = "image"
    for node in other.graph.node:
        node.input[:] = ["image" if i == "input" else i for i in node.input]
    other_path = tmp_path / "other.onnx"
    onnx.save(other, other_path)
    out_json = tmp_path / "r.json"
    cases = [
        (other_path, ["--json", out_json], "inputs differ"),
        (qdq, ["--json", calib], "is the calibration data"),
        (qdq, ["--html", qdq], "is the quantized model"),
        (qdq, ["--limit", 0], "--limit must be at least 1"),
    ]
    before = qdq.read_bytes()
    for model, extra, message in cases:
        code, _, err = onnxq_cli("compare", fp32, model, "--calib", calib, *extra)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out_json.exists() and qdq.read_bytes() == before
