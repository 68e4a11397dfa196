"""ai.onnxq QLinearConcat (native/src/ort/op_concat.c) in an onnxruntime session.

Its bytes must be onnxruntime's own com.microsoft QLinearConcat's and the numpy reference's on
every ISA and thread count. The op's tensors are one variadic input, so these tests also prove
the variadic glue (the op's characteristic, arity and homogeneity callbacks) and the
``KernelContext_GetInputCount`` slot: the op takes its tensor count from that slot at run time
and refuses a count other than the one it was created with, so a wrong slot (the output count
next to it, say) fails every case but one, and 1, 2, 3 and 5 tensors all give the right bytes.
Bad attributes, shapes and types are errors naming the node, never a crash.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxq.kernels.custom_ops import DOMAIN, OPSET
from onnxq.kernels.reference.concat import qconcat as reference_qconcat
from onnxq.runtime import InferenceSession

F32 = np.float32
Y_SCALE, Y_ZP = F32(0.05), 120


def _model(
    shapes: list[list[int | str]],
    scales: list[float],
    zero_points: list[int],
    *,
    ours: bool = True,
    x_type: int = TensorProto.UINT8,
    **attrs: object,
) -> onnx.ModelProto:
    """One QLinearConcat of ``len(shapes)`` uint8 graph inputs: ours, or com.microsoft's."""
    names = [f"x{i}" for i in range(len(shapes))]
    inits = [
        numpy_helper.from_array(np.array(Y_SCALE), "ys"),
        numpy_helper.from_array(np.array(Y_ZP, np.uint8), "yz"),
    ]
    if ours:
        inits += [
            numpy_helper.from_array(np.array(scales, F32), "xs"),
            numpy_helper.from_array(np.array(zero_points, np.uint8), "xz"),
        ]
        node = helper.make_node(
            "QLinearConcat", ["ys", "yz", "xs", "xz", *names], ["y"], domain=DOMAIN, name="cat", **attrs
        )
    else:
        triples = []
        for i, (s, z) in enumerate(zip(scales, zero_points, strict=True)):
            inits += [
                numpy_helper.from_array(np.array(s, F32), f"s{i}"),
                numpy_helper.from_array(np.array(z, np.uint8), f"z{i}"),
            ]
            triples += [names[i], f"s{i}", f"z{i}"]
        node = helper.make_node(
            "QLinearConcat", ["ys", "yz", *triples], ["y"], domain="com.microsoft", **attrs
        )
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, x_type, s) for n, s in zip(names, shapes, strict=True)],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, None)],
        inits,
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, OPSET)]
    return helper.make_model(graph, opset_imports=[*opsets, helper.make_opsetid("com.microsoft", 1)])


def _ours(model: onnx.ModelProto, threads: int = 1) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _stock(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _shapes(base: list[int], axis: int, extents: list[int]) -> list[list[int]]:
    out = []
    for e in extents:
        shape = list(base)
        shape[axis] = e
        out.append(shape)
    return out


@pytest.mark.parametrize(
    ("base", "axis", "extents"),
    [
        ([2, 8, 33, 17], 1, [3]),  # one tensor: requantised as it is
        ([2, 8, 33, 17], 1, [3, 5]),  # NCHW channels
        ([2, 33, 17, 8], 3, [4, 1, 7]),  # NHWC channels: one tensor's row per pixel
        ([2, 33, 17, 8], -1, [2, 2, 3, 1, 6]),  # negative axis, five tensors
        ([3, 5, 7], 0, [1, 4]),  # the outermost axis: one block per tensor
        ([4, 300, 300], 2, [9, 1]),  # rows over several chunks, on the session's threads
    ],
)
def test_qlinearconcat_gives_onnxruntimes_and_the_references_bytes(
    isa: str, rng: np.random.Generator, base: list[int], axis: int, extents: list[int]
) -> None:
    shapes = _shapes(base, axis, extents)
    scales = [float(v) for v in np.exp(rng.uniform(-5, -1, len(shapes)))]
    zero_points = [int(v) for v in rng.integers(0, 256, len(shapes))]
    scales[0], zero_points[0] = float(Y_SCALE), Y_ZP  # the output's qparams: copied
    feeds = {f"x{i}": rng.integers(0, 256, s, dtype=np.uint8) for i, s in enumerate(shapes)}
    want = _stock(_model(shapes, scales, zero_points, ours=False, axis=axis)).run(None, feeds)[0]
    reference = reference_qconcat(list(feeds.values()), scales, zero_points, Y_SCALE, Y_ZP, axis)
    np.testing.assert_array_equal(reference, want)
    for threads in (1, 2):
        got = _ours(_model(shapes, scales, zero_points, axis=axis), threads).run(None, feeds)[0]
        np.testing.assert_array_equal(got, want, err_msg=f"{isa}, {threads} thread(s)")


def test_a_tensor_empty_along_the_axis_adds_nothing_and_an_empty_output_is_empty() -> None:
    shapes = [[2, 3, 4], [2, 0, 4], [2, 2, 4]]
    feeds = {f"x{i}": np.full(s, 7 * i, np.uint8) for i, s in enumerate(shapes)}
    batch = [["n", *s[1:]] for s in shapes]
    session = _ours(_model(batch, [0.1, 0.2, 0.3], [0, 1, 2], axis=1))
    got = session.run(None, feeds)[0]
    want = reference_qconcat(list(feeds.values()), [0.1, 0.2, 0.3], [0, 1, 2], Y_SCALE, Y_ZP, 1)
    np.testing.assert_array_equal(got, want)
    empty = {k: v[:0] for k, v in feeds.items()}
    assert session.run(None, empty)[0].shape == (0, 5, 4)


def _error(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> str:
    with pytest.raises(Exception) as info:  # onnxruntime's own exception types
        _ours(model).run(None, feeds)
    return str(info.value)


def _zeros(shapes: list[list[int]], dtype: type = np.uint8) -> dict[str, np.ndarray]:
    return {f"x{i}": np.zeros(s, dtype) for i, s in enumerate(shapes)}


NODE = "onnxq QLinearConcat node 'cat': "


@pytest.mark.parametrize(
    ("shapes", "kwargs", "message"),
    [
        ([[2, 3], [2, 4]], {"axis": 2}, "attribute axis is 2, out of range for tensors of rank 2"),
        ([[2, 3], [2, 4]], {"axis": -3}, "attribute axis is -3, out of range for tensors of rank 2"),
        ([[2, 3], [2, 4]], {"axis": 9}, "attribute axis is 9, expected -8 to 7"),
        ([[2, 3], [2, 4]], {}, "axis: "),  # the runtime's own message follows
        ([[2, 3], [2, 4, 1]], {"axis": 1}, "x_1 has rank 3, x_0 has rank 2"),
        ([[2, 3], [3, 4]], {"axis": 1}, "x_1 has extent 3 along axis 0, x_0 has 2 (only axis 1 may differ)"),
        ([[]] * 2, {"axis": 0}, "x_0 is a scalar"),
    ],
)
def test_bad_axes_and_shapes_are_errors_naming_the_node(
    shapes: list[list[int]], kwargs: dict[str, int], message: str
) -> None:
    model = _model(shapes, [0.1] * len(shapes), [3] * len(shapes), **kwargs)
    assert NODE + message in _error(model, _zeros(shapes))


def _edit_init(name: str, array: np.ndarray):  # type: ignore[no-untyped-def]
    def edit(m: onnx.ModelProto) -> None:
        t = next(t for t in m.graph.initializer if t.name == name)
        t.CopyFrom(numpy_helper.from_array(array, name))

    return edit


def _scales_as_input(m: onnx.ModelProto) -> None:
    t = next(t for t in m.graph.initializer if t.name == "xs")
    m.graph.initializer.remove(t)
    m.graph.input.append(helper.make_tensor_value_info("xs", TensorProto.FLOAT, [2]))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_edit_init("xs", np.array([0.1, 0.2, 0.3], F32)), "x_scales has 3 values (rank 1), expected one"),
        (_edit_init("xz", np.array([[1, 2]], np.uint8)), "x_zero_points has 2 values (rank 2), expected one"),
        (_edit_init("xs", np.array([0.1, 0.0], F32)), "x_scales[1] is 0, expected a finite scale > 0"),
        (_edit_init("ys", np.array(np.inf, F32)), "y_scale is inf, expected a finite scale > 0"),
        (_scales_as_input, "x_scales must be a constant (an initializer)"),
    ],
)
def test_bad_qparams_are_errors_naming_the_node_when_the_session_is_made(edit, message: str) -> None:  # type: ignore[no-untyped-def]
    shapes = [[2, 3], [2, 4]]
    model = _model(shapes, [0.1, 0.2], [3, 4], axis=1)
    edit(model)
    assert NODE + message in _error(model, {**_zeros(shapes), "xs": np.ones(2, F32)})


def test_a_tensor_of_another_type_or_no_tensor_is_refused_by_onnxruntime_naming_the_node() -> None:
    shapes = [[2, 3], [2, 4]]
    model = _model(shapes, [0.1, 0.2], [3, 4], x_type=TensorProto.INT8, axis=1)
    message = _error(model, _zeros(shapes, np.int8))
    assert "node (cat)" in message and "tensor(int8)" in message  # the variadic input: uint8 only
    message = _error(_model([], [], [], axis=0), {})
    assert "Node(cat)" in message and "input size 4" in message  # one tensor at least
