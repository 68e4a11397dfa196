"""ExpandResizeAxes: a Resize's ``axes`` (opset 18) spelled as full-rank scales or sizes.

The rewritten float model computes the same tensor as the original (onnxruntime, both unoptimised),
for scales and for sizes, negative axes and every nearest / linear mode; and a model with such a
Resize between two convs, quantized by onnxq, runs on stock onnxruntime at its default
optimisation level (with ``axes`` left in, onnxruntime 1.32's layout transformer fails on it).
What cannot be rewritten keeps its axes, with the reason in the notes.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxq
from onnxq.io import load_model, to_proto
from onnxq.passes.resize_axes import ExpandResizeAxes, full_rank

F32 = np.float32


def _resize_model(
    inputs: list[str], inits: dict[str, np.ndarray], shape: list[int | str], convs: bool = False, **attributes
) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    nodes, x = [], "x"
    tensors = [numpy_helper.from_array(v, k) for k, v in inits.items()]
    if convs:
        tensors.append(numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(F32), "w1"))
        tensors.append(numpy_helper.from_array(rng.standard_normal((2, 4, 3, 3)).astype(F32), "w2"))
        nodes += [
            helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1] * 4),
            helper.make_node("Relu", ["c1"], ["r1"]),
        ]
        x = "r1"
    nodes.append(
        helper.make_node("Resize", [x, *inputs], ["r" if convs else "y"], name="resize", **attributes)
    )
    if convs:
        nodes.append(helper.make_node("Conv", ["r", "w2"], ["y"], pads=[1] * 4))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], tensors,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(model: onnx.ModelProto, x: np.ndarray, optimize: bool = False) -> np.ndarray:
    options = ort.SessionOptions()
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_full_rank_spreads_values_over_their_axes() -> None:
    np.testing.assert_array_equal(full_rank(np.array([2.0, 3.0], F32), [3, 1], [1.0] * 4), [1, 3, 1, 2])
    np.testing.assert_array_equal(full_rank(np.array([9], np.int64), [2], [2, 4, 6, 6]), [2, 4, 9, 6])


CASES = {
    "scales-hw": (["", "scales"], {"scales": np.array([2, 1.5], F32)}, {"axes": [2, 3]}),
    "scales-negative": (["", "scales"], {"scales": np.array([0.5, 3], F32)}, {"axes": [-1, -2]}),
    "sizes-w-linear": (
        ["", "", "sizes"], {"sizes": np.array([11], np.int64)}, {"axes": [3], "mode": "linear"}
    ),
    "sizes-hw-cubic": (
        ["", "", "sizes"], {"sizes": np.array([9, 4], np.int64)},
        {"axes": [2, 3], "mode": "cubic", "coordinate_transformation_mode": "half_pixel"},
    ),
    "scales-channels-nearest": (
        ["", "scales"], {"scales": np.array([2], F32)}, {"axes": [1], "nearest_mode": "floor"}
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_the_full_rank_resize_computes_the_same_tensor(case: str) -> None:
    inputs, inits, attributes = CASES[case]
    model = _resize_model(inputs, inits, [2, 3, 6, 6], **attributes)
    result = ExpandResizeAxes()(load_model(model))
    assert result.modified and result.notes == ()
    rewritten = to_proto(result.model)
    resize = next(n for n in rewritten.graph.node if n.op_type == "Resize")
    assert "axes" not in [a.name for a in resize.attribute]
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 6)).astype(F32)
    np.testing.assert_array_equal(_run(rewritten, x), _run(model, x))


def test_a_quantized_model_with_resize_axes_between_convs_runs_on_stock_onnxruntime() -> None:
    model = _resize_model(
        ["", "scales"], {"scales": np.array([2, 2], F32)}, [1, 3, 6, 6], convs=True, axes=[2, 3]
    )
    rng = np.random.default_rng(2)
    batches = [{"x": rng.standard_normal((1, 3, 6, 6)).astype(F32)} for _ in range(4)]
    qdq = onnxq.quantize_static(model, batches, progress=False)
    x = batches[0]["x"]
    got = _run(qdq, x, optimize=True)  # raised "indices element out of data bounds" with axes left in
    want = _run(model, x)
    assert got.shape == want.shape == (1, 2, 12, 12)
    assert np.corrcoef(got.reshape(-1), want.reshape(-1))[0, 1] > 0.99


@pytest.mark.parametrize(
    ("inputs", "inits", "shape", "attributes", "reason"),
    [
        (["", "", "sizes"], {"sizes": np.array([9], np.int64)}, ["n", 3, 6, 6], {"axes": [2]}, "not static"),
        (
            ["", "", "sizes"], {"sizes": np.array([9, 9], np.int64)}, [2, 3, 6, 6],
            {"axes": [2, 3], "keep_aspect_ratio_policy": "not_larger"}, "keep_aspect_ratio_policy",
        ),
    ],
)  # fmt: skip
def test_what_cannot_be_rewritten_keeps_its_axes_with_the_reason(
    inputs, inits, shape, attributes, reason
) -> None:  # type: ignore[no-untyped-def]
    result = ExpandResizeAxes()(load_model(_resize_model(inputs, inits, shape, **attributes)))
    assert not result.modified
    assert (
        len(result.notes) == 1 and "keeps its axes attribute" in result.notes[0] and reason in result.notes[0]
    )
