"""Tests of the quantization report (onnxq.report)."""

from __future__ import annotations

import json

import pytest

from onnxq.planning.ops import QuantKind
from onnxq.planning.plan import NodeDecision, QuantPlan
from onnxq.report import NodeEntry, QuantizationReport, build_report

NONE_REASON = "its qconfig is None (left in float by the QConfigMapping)"


def _plan() -> QuantPlan:
    decisions = (
        NodeDecision("conv", "Conv", QuantKind.WEIGHTED, None),
        NodeDecision("relu", "Relu", None, None, anchor="conv"),
        NodeDecision("erf", "Erf", None, "op type Erf is not quantized by onnxq"),
        NodeDecision("conv2", "Conv", QuantKind.WEIGHTED, NONE_REASON),
        NodeDecision("add", "Add", QuantKind.ELEMENTWISE, None),
    )
    return QuantPlan(decisions, {}, {}, {}, ())


def test_build_report_lists_quantized_and_float_nodes_with_reasons() -> None:
    report = build_report(_plan(), unreached={"t2", "t1"}, nonfinite={"t1": 3, "x": 0}, num_samples=32)
    assert [n.name for n in report.quantized] == ["conv", "relu", "add"]
    assert [(n.name, n.reason) for n in report.float_nodes] == [
        ("erf", "op type Erf is not quantized by onnxq"),
        ("conv2", "its qconfig is None (left in float by the QConfigMapping)"),
    ]
    assert report.nodes[1] == NodeEntry("relu", "Relu", None, None, "conv")
    assert report.op_counts() == {"Add": (1, 0), "Conv": (1, 1), "Erf": (0, 1), "Relu": (1, 0)}
    assert report.unreached == ("t1", "t2") and report.nonfinite == {"t1": 3}
    assert report.num_samples == 32


def test_report_to_dict_is_json_serialisable_and_complete() -> None:
    report = build_report(_plan(), unreached={"t"}, nonfinite={"t": 2}, num_samples=4, pass_notes=("n1",))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["num_samples"] == 4 and data["unreached"] == ["t"] and data["nonfinite"] == {"t": 2}
    assert data["op_counts"]["Conv"] == {"quantized": 1, "float": 1}
    assert data["nodes"][3] == {
        "name": "conv2", "op_type": "Conv", "quantized": False, "kind": "weighted",
        "reason": "its qconfig is None (left in float by the QConfigMapping)", "fused_into": None,
    }
    assert data["pass_notes"] == ["n1"]


def test_report_format_names_float_nodes_unreached_and_nan_counts() -> None:
    text = build_report(_plan(), unreached={"t"}, nonfinite={"t": 7}, num_samples=9).format()
    lines = text.splitlines()
    assert lines[0] == "quantized 3 of 5 nodes; calibrated on 9 samples"
    assert "  erf (Erf): op type Erf is not quantized by onnxq" in lines
    assert "tensors no calibration sample reached: t" in lines
    assert any(line.startswith("NaN/Inf values ignored in calibration: 7 in 1 tensors") for line in lines)
    assert str(build_report(_plan())) == build_report(_plan()).format()


def test_report_format_truncates_long_float_lists() -> None:
    decisions = tuple(NodeDecision(f"n{i}", "Erf", None, "unsupported") for i in range(60))
    text = build_report(QuantPlan(decisions, {}, {}, {}, ())).format(max_float=10)
    assert text.count("(Erf): unsupported") == 10 and "... and 50 more" in text


def test_report_rejects_invalid_counts() -> None:
    with pytest.raises(ValueError, match="num_samples"):
        QuantizationReport(nodes=(), num_samples=-1)
    with pytest.raises(ValueError, match="nonfinite"):
        QuantizationReport(nodes=(), nonfinite={"t": 0})
