from __future__ import annotations

import numpy as np
import pytest

from onnxq.io import load_model, to_proto
from onnxq.passes.global_pool import ReduceMeanToGlobalPool, spatial_axes
from onnxq.passes.normalize import Normalize


@pytest.mark.parametrize(
    ("axes", "rank", "expected"),
    [
        ([2, 3], 4, True),
        ([-1, -2], 4, True),
        ([3, 2], 4, True),
        ([2], 4, False),
        ([1, 2, 3], 4, False),
        ([2], 3, True),
        ([2, 3, 4], 5, True),
        ([0], 2, False),
    ],
)
def test_spatial_axes_accepts_exactly_the_spatial_axes(axes, rank, expected):
    assert spatial_axes(axes, rank) is expected


def _rewrite(proto):
    model = Normalize()(load_model(proto)).model
    result = ReduceMeanToGlobalPool()(model)
    return result, to_proto(result.model)


@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_mean_over_spatial_axes_becomes_global_pool_opset13(
    model_from_text, op_counts, assert_same_outputs, keepdims
):
    proto = model_from_text(f"""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2, 3, 5, 7] x) => (float[N] y) {{
            y = ReduceMean<axes = [-2, -1], keepdims = {keepdims}>(x)
        }}""")
    result, after = _rewrite(proto)
    assert result.count == 1
    counts = op_counts(after)
    assert "ReduceMean" not in counts and counts["GlobalAveragePool"] == 1
    assert counts.get("Squeeze", 0) == (1 - keepdims)
    assert after.graph.output[0].name == "y"
    assert_same_outputs(proto, after)


def test_reduce_mean_with_axes_input_opset18_is_rewritten(model_from_text, op_counts, assert_same_outputs):
    proto = model_from_text("""
        <ir_version: 8, opset_import: ["" : 18]>
        g (float[1, 4, 6, 6] x) => (float[1, 4, 1, 1] y) {
            axes = Constant<value = int64[2] {2, 3}>()
            y = ReduceMean<keepdims = 1>(x, axes)
        }""")
    result, after = _rewrite(proto)
    assert result.count == 1 and op_counts(after)["GlobalAveragePool"] == 1
    assert_same_outputs(proto, after)


def test_reduce_mean_over_channels_is_left_alone(model_from_text, op_counts):
    proto = model_from_text("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[1, 4, 6, 6] x) => (float[1, 1, 6, 6] y) {
            y = ReduceMean<axes = [1], keepdims = 1>(x)
        }""")
    result, after = _rewrite(proto)
    assert result.count == 0 and op_counts(after) == {"ReduceMean": 1}


def test_adaptive_avg_pool_export_has_no_reduce_mean_left(
    export_torch, torch_exporter, op_counts, assert_same_outputs
):
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3)
            self.pool = torch.nn.AdaptiveAvgPool2d(1)

        def forward(self, x):
            return torch.flatten(self.pool(self.conv(x)), 1) + x.mean(dim=(2, 3)).sum(1, keepdim=True)

    proto = export_torch(Net(), (torch.randn(2, 3, 9, 9),), torch_exporter.exporter, torch_exporter.opset)
    result, after = _rewrite(proto)
    counts = op_counts(after)
    assert result.count == counts["GlobalAveragePool"] - op_counts(proto).get("GlobalAveragePool", 0)
    assert "ReduceMean" not in counts and counts["GlobalAveragePool"] == 2
    feeds = {after.graph.input[0].name: np.random.default_rng(0).standard_normal((2, 3, 9, 9), np.float32)}
    assert_same_outputs(proto, after, feeds)
