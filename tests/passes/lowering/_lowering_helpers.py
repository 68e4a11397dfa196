"""What the lowering tests share: small QDQ graph builders and the byte-for-byte comparison of a
lowered model with its QDQ model on onnxruntime (both sides as their exact uint8 twins)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from onnxq.passes.uint8_twin import exact_on_onnxruntime
from onnxq.runtime import InferenceSession

F32 = np.float32
H = W = 6


def init(name: str, value: object, dtype: type) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, dtype), name)


def make_model(
    nodes: list[onnx.NodeProto], inputs: dict[str, int], inits: list[onnx.TensorProto], opset: int = 17
) -> onnx.ModelProto:
    """Float inputs ``name: channels`` of 2 x C x H x W, one float output ``y``, at ``opset``."""
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, c, H, W]) for n, c in inputs.items()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def append_qdq_conv(
    nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], rng: np.random.Generator,
    name: str, x: str, cin: int, cout: int, per_channel: bool = True,
) -> None:  # fmt: skip
    """A 3x3 conv ``conv_{name}`` (pads 1, no bias) of the float tensor ``x`` with random int8
    weights (scale 0.01, per channel or, for opsets < 13, per tensor) behind a DequantizeLinear;
    its float output is ``{name}c``."""
    inits += [
        numpy_helper.from_array(rng.integers(-127, 128, (cout, cin, 3, 3), dtype=np.int8), f"{name}w"),
        init(f"{name}ws", np.full(cout, 0.01) if per_channel else 0.01, F32),
    ]
    nodes += [
        helper.make_node(
            "DequantizeLinear",
            [f"{name}w", f"{name}ws"],
            [f"{name}wd"],
            **({"axis": 0} if per_channel else {}),
        ),
        helper.make_node("Conv", [x, f"{name}wd"], [f"{name}c"], pads=[1] * 4, name=f"conv_{name}"),
    ]


def feeds(model: onnx.ModelProto, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        v.name: (rng.standard_normal([d.dim_value for d in v.type.tensor_type.shape.dim]) * 3).astype(F32)
        for v in model.graph.input
    }


def same_bytes(qdq: onnx.ModelProto, lowered: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> None:
    stock = ort.InferenceSession(
        exact_on_onnxruntime(qdq).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    ours = InferenceSession(
        exact_on_onnxruntime(lowered).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    for k, (a, b) in enumerate(zip(stock.run(None, feeds), ours.run(None, feeds), strict=True)):
        np.testing.assert_array_equal(b, a, err_msg=f"output {k}")
