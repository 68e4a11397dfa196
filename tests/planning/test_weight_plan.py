"""What each weight becomes (onnxq.planning.weight_plan): granularity resolved per op, bias or not."""

from __future__ import annotations

import pytest

from onnxq.qconfig import PerBlock, PerChannel, PerTensor, QConfig, QConfigMapping, QSpec

HEADER = '<ir_version: 8, opset_import: ["" : 17]>'
W = ", ".join(str(0.01 * i) for i in range(2 * 40))
MODEL = f"""{HEADER}
g (float[3, 40] x, float[1, 2, 5, 5] img) => (float[3, 2] y, float[1, 4, 5, 5] c)
<float[2, 40] w = {{{W}}}, float[2] b = {{0.5, -0.5}},
 float[4, 2, 1, 1] cw = {{1, 2, 3, 4, 5, 6, 7, 8}}, float[4] cb = {{1, 2, 3, 4}}> {{
    [gemm] y = Gemm <transB = 1> (x, w, b)
    [conv] c = Conv(img, cw, cb)
}}
"""


ACTIVATION = QSpec()


def _weights(make_plan, weight: QSpec, activation: QSpec | None = ACTIVATION):
    _, plan = make_plan(MODEL, QConfigMapping(global_qconfig=QConfig(activation, weight)))
    return plan


@pytest.mark.parametrize(
    ("granularity", "gemm", "conv"),
    [
        (PerTensor(), PerTensor(), PerTensor()),
        (PerChannel(), PerChannel(0), PerChannel(0)),
        (PerChannel(-2), PerChannel(0), None),  # the Conv weight's axis -2 is not its output channels
        (PerBlock(block_size=16), PerBlock(1, 16), PerBlock(1, 16)),
        (PerBlock(0, 2), PerBlock(0, 2), PerBlock(0, 2)),
    ],
)
def test_granularity_is_resolved_from_the_op_rule(make_plan, granularity, gemm, conv) -> None:
    plan = _weights(make_plan, QSpec("int8", symmetric=True, granularity=granularity))
    assert plan.weights["gemm"].granularity == gemm
    if conv is None:
        reason = next(d.reason for d in plan.decisions if d.name == "conv")
        assert reason == "weight per-channel axis -2 is not Conv's output-channel axis 0 (rank 4)"
    else:
        assert plan.weights["conv"].granularity == conv


def test_bias_is_int32_only_beside_quantized_activations_and_channel_scales(make_plan) -> None:
    per_channel = _weights(make_plan, QSpec("int8", symmetric=True, granularity=PerChannel()))
    assert (per_channel.weights["gemm"].bias, per_channel.weights["conv"].bias) == ("b", "cb")
    blocks = _weights(make_plan, QSpec("int4", symmetric=True, granularity=PerBlock(block_size=16)))
    assert blocks.weights["gemm"].bias is None and blocks.weights["gemm"].activation == "x"
    weight_only = _weights(make_plan, QSpec("int8", symmetric=True, granularity=PerChannel()), None)
    assert weight_only.weights["gemm"].bias is None and weight_only.weights["gemm"].activation is None
    assert weight_only.inputs == {} and weight_only.observed_values() == {}
