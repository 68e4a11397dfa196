"""Helpers shared by the native kernel tests (importable at collection time, unlike fixtures).

The ``isa`` and ``rng`` fixtures live in ``conftest.py``; this module holds the plain values and
functions the tests use in ``parametrize`` lists and bodies::

    from _helpers import DTYPES, ZERO_POINTS, assert_same_bits, ort_session, random_q, weight_as_input
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnxruntime as ort
from onnx import ModelProto, NodeProto, TensorProto, ValueInfoProto, helper

from onnxq.passes.uint8_twin import exact_on_onnxruntime

F32 = np.float32
DTYPES = [np.uint8, np.int8]
# the edges and the middle of each 8-bit range: (low, mid, high)
ZERO_POINTS: dict[type, tuple[int, int, int]] = {np.uint8: (0, 128, 255), np.int8: (-128, 0, 127)}


def random_q(rng: np.random.Generator, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    """Uniform integers over the whole range of ``dtype`` (uint8 / int8), of the given shape."""
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, shape).astype(dtype)


def assert_same_bits(a: np.ndarray, b: np.ndarray) -> None:
    """Both float32 of one shape, equal bit for bit (NaN payloads and the sign of zero count)."""
    assert a.shape == b.shape and a.dtype == b.dtype == F32, (a.shape, a.dtype, b.shape, b.dtype)
    np.testing.assert_array_equal(a.view(np.int32), b.view(np.int32))


def ort_session(nodes: Sequence[NodeProto], inputs: Sequence[ValueInfoProto],
                outputs: Sequence[ValueInfoProto], *, opset: int = 17,
                initializers: Sequence[TensorProto] = ()) -> ort.InferenceSession:
    """A one-graph model (default domain at ``opset``, ``com.microsoft`` 1) on the CPU provider with
    graph optimisations off, so onnxruntime runs the nodes as written (no fusion). It computes the
    exact integers: where onnxruntime's u8 x s8 kernels saturate on this CPU, the model's
    uint8 twin runs (:func:`onnxq.passes.uint8_twin.exact_on_onnxruntime`)."""
    graph = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                    helper.make_opsetid("com.microsoft", 1)])
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(
        exact_on_onnxruntime(model).SerializeToString(), so, providers=["CPUExecutionProvider"]
    )


def weight_as_input(model: ModelProto, name: str = "w") -> None:
    """Turn the initializer ``name`` of ``model`` into a graph input of its type and shape (a
    custom op's weight that is no longer a constant)."""
    w = next(t for t in model.graph.initializer if t.name == name)
    model.graph.initializer.remove(w)
    model.graph.input.append(helper.make_tensor_value_info(name, w.data_type, list(w.dims)))
