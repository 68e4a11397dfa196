"""onnxq's kernels as onnxruntime custom ops (native/src/ort, onnxq/kernels/custom_ops.py).

Every op runs inside a stock onnxruntime session and must give the bytes onnxruntime's own
standard op gives (QuantizeLinear, DequantizeLinear, QLinearConv) on every ISA, whatever the
thread count. The tests also exercise every C API slot the glue uses (native/src/ort/ort_abi.h):
registration (CreateCustomOpDomain, CustomOpDomain_Add, AddCustomOpDomain), attributes of each
type read (int, ints, string: the values must take effect), constant inputs read at creation,
an optional input present and absent, outputs allocated with computed shapes, the session's
threads (ParallelFor), and statuses made, read and released (messages that name the node and
carry onnxruntime's own text).
"""

from __future__ import annotations

import ctypes

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from _helpers import weight_as_input
from onnx import TensorProto, helper, numpy_helper

from onnxq.kernels.custom_ops import DOMAIN, OPSET, library_path
from onnxq.passes.uint8_twin import exact_on_onnxruntime
from onnxq.runtime import InferenceSession, make_session, register_custom_ops

F32 = np.float32


def _model(
    nodes: list[onnx.NodeProto],
    x_shape: list[int],
    inits: list[onnx.TensorProto],
    x_type: int = TensorProto.FLOAT,
    y_type: int = TensorProto.FLOAT,
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", x_type, x_shape)],
        [helper.make_tensor_value_info("y", y_type, None)],
        inits,
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, OPSET)]
    return helper.make_model(graph, opset_imports=opsets)


def _ours(model: onnx.ModelProto, threads: int = 1) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _stock(model: onnx.ModelProto) -> ort.InferenceSession:
    """Stock onnxruntime computing the model's exact integers (the uint8 twin where its
    u8 x s8 kernels saturate on this CPU)."""
    exact = exact_on_onnxruntime(model)
    return ort.InferenceSession(exact.SerializeToString(), providers=["CPUExecutionProvider"])


def _conv_inits(rng: np.random.Generator, o: int, cg: int, k: int, per_channel: bool, bias: bool):  # type: ignore[no-untyped-def]
    w = rng.integers(-127, 128, (o, cg, k, k), dtype=np.int8)
    ws = (rng.random(o if per_channel else 1) * 0.01 + 0.001).astype(F32)
    inits = [
        numpy_helper.from_array(np.array(0.05, F32), "xs"),
        numpy_helper.from_array(np.array(121, np.uint8), "xz"),
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(ws if per_channel else ws.reshape(()), "ws"),
        numpy_helper.from_array(np.zeros(o if per_channel else (), np.int8), "wz"),
        numpy_helper.from_array(np.array(0.21, F32), "ys"),
        numpy_helper.from_array(np.array(9, np.uint8), "yz"),
    ]
    if bias:
        inits.append(numpy_helper.from_array(rng.integers(-3000, 3000, o).astype(np.int32), "b"))
    return inits


CONV_INPUTS = ["xq", "xs", "xz", "w", "ws", "wz", "ys", "yz"]

# (N, C, H, W, O, kernel, stride, pad, dilation, group)
GEOMETRIES = [
    (2, 8, 9, 11, 16, 3, 1, 1, 1, 1),
    (1, 64, 28, 28, 64, 3, 1, 1, 1, 1),  # large enough to be split into bands of rows
    (1, 32, 15, 15, 32, 3, 2, 1, 1, 32),  # depthwise, stride 2, odd size
    (3, 16, 14, 14, 24, 1, 1, 0, 1, 1),  # 1x1 straight on the NHWC rows, batch 3
    (1, 3, 64, 64, 16, 7, 2, 3, 1, 1),  # stem: 7x7, stride 2, pad 3
    (1, 16, 12, 12, 16, 3, 1, 2, 2, 4),  # dilated, grouped
    (1, 8, 5, 5, 8, 3, 1, 4, 1, 1),  # pads larger than the kernel: bands all padding
    (1, 160, 7, 7, 200, 1, 1, 0, 1, 1),  # 1x1 on 49 pixels: ranges of output channels
    (1, 64, 14, 14, 128, 1, 1, 0, 1, 1),  # two pixel ranges times two ranges of channels
    (3, 64, 7, 7, 128, 3, 1, 1, 1, 1),  # small images: all three in one task, channel ranges
    (5, 16, 6, 6, 24, 3, 1, 1, 1, 1),  # small images: four per task
]


def _conv_pair(
    rng: np.random.Generator, geometry: tuple[int, ...], per_channel: bool, bias: bool, relu: bool
) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    n, c, h, w, o, k, stride, pad, dil, group = geometry
    inits = _conv_inits(rng, o, c // group, k, per_channel, bias)
    inputs = CONV_INPUTS + (["b"] if bias else [])
    geo = {"strides": [stride] * 2, "pads": [pad] * 4, "dilations": [dil] * 2, "group": group}
    ours = _model(
        [
            helper.make_node(
                "Quantize", ["x", "xs", "xz"], ["xq"], domain=DOMAIN, name="in", layout="nchw_to_nhwc"
            ),
            helper.make_node(
                "QLinearConv",
                inputs,
                ["yq"],
                domain=DOMAIN,
                name="conv",
                qmin=9 if relu else 0,
                qmax=255,
                **geo,
            ),
            helper.make_node("Dequantize", ["yq", "ys", "yz"], ["y"], domain=DOMAIN, layout="nhwc_to_nchw"),
        ],
        [n, c, h, w],
        inits,
    )
    stock_nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("QLinearConv", inputs, ["yq"], **geo),
        helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["yf"]),
        helper.make_node("Relu" if relu else "Identity", ["yf"], ["y"]),
    ]
    return ours, _model(stock_nodes, [n, c, h, w], inits)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_qlinearconv_gives_onnxruntimes_bytes_on_every_isa_and_thread_count(
    isa: str, rng: np.random.Generator, geometry: tuple[int, ...]
) -> None:
    ours, stock = _conv_pair(rng, geometry, per_channel=True, bias=True, relu=False)
    x = (rng.standard_normal(geometry[:4]) * 3).astype(F32)
    want = _stock(stock).run(None, {"x": x})[0]
    for threads in (1, 2):
        got = _ours(ours, threads).run(None, {"x": x})[0]
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want, err_msg=f"{isa}, {threads} thread(s)")


@pytest.mark.parametrize(
    ("per_channel", "bias", "relu"), [(False, False, False), (True, False, True), (False, True, True)]
)
def test_qlinearconv_per_tensor_weights_no_bias_and_fused_relu(
    rng: np.random.Generator, per_channel: bool, bias: bool, relu: bool
) -> None:
    ours, stock = _conv_pair(rng, GEOMETRIES[0], per_channel, bias, relu)
    x = (rng.standard_normal(GEOMETRIES[0][:4]) * 3).astype(F32)
    np.testing.assert_array_equal(_ours(ours).run(None, {"x": x})[0], _stock(stock).run(None, {"x": x})[0])


def _quant_model(op: str, layout: str, shape: list[int]) -> onnx.ModelProto:
    inits = [
        numpy_helper.from_array(np.array(0.037, F32), "s"),
        numpy_helper.from_array(np.array(131, np.uint8), "z"),
    ]
    x_type, y_type = (
        (TensorProto.FLOAT, TensorProto.UINT8) if op == "Quantize" else (TensorProto.UINT8, TensorProto.FLOAT)
    )
    node = helper.make_node(op, ["x", "s", "z"], ["y"], domain=DOMAIN, layout=layout, name="boundary")
    return _model([node], shape, inits, x_type, y_type)


# Quantize to NHWC works on chunks of pixels of 16 KiB of bytes: one chunk, several (the last
# shorter), and more channels than a chunk holds (one pixel at a time).
@pytest.mark.parametrize("shape", [(2, 5, 7, 3), (2, 3, 80, 90), (1, 200, 9, 13), (1, 16385, 1, 2)])
def test_quantize_and_dequantize_match_the_standard_ops_in_both_layouts(
    isa: str, rng: np.random.Generator, shape: tuple[int, ...]
) -> None:
    x = (rng.standard_normal(shape) * 6).astype(F32)
    x.flat[:6] = [np.nan, np.inf, -np.inf, 1e30, -0.0, 0.0185]  # saturation, NaN, a tie
    s, z = F32(0.037), np.uint8(131)
    q = _ours(_quant_model("Quantize", "same", list(x.shape))).run(None, {"x": x})[0]
    want_q = _stock_quantize(x, s, z)
    np.testing.assert_array_equal(q, want_q)
    nhwc = _ours(_quant_model("Quantize", "nchw_to_nhwc", list(x.shape))).run(None, {"x": x})[0]
    np.testing.assert_array_equal(nhwc, q.transpose(0, 2, 3, 1))
    deq = _ours(_quant_model("Dequantize", "same", list(q.shape))).run(None, {"x": q})[0]
    np.testing.assert_array_equal(deq, ((q.astype(np.int32) - 131).astype(F32) * s).astype(F32))
    back = _ours(_quant_model("Dequantize", "nhwc_to_nchw", list(nhwc.shape))).run(None, {"x": nhwc})[0]
    np.testing.assert_array_equal(back, deq)


def _stock_quantize(x: np.ndarray, s: np.float32, z: np.uint8) -> np.ndarray:
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])],
        "r",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, None)],
        [numpy_helper.from_array(np.array(s), "s"), numpy_helper.from_array(np.array(z), "z")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return _stock(model).run(None, {"x": np.ascontiguousarray(x, F32)})[0]


def test_a_model_with_our_ops_without_registration_says_how_to_register() -> None:
    model = _quant_model("Quantize", "same", [4])
    with pytest.raises(Exception, match="not a registered function/op"):
        _stock(model)
    from onnxq.runtime import error_text

    try:
        _stock(model)
    except Exception as e:  # onnxruntime's own type
        assert "onnxq.runtime.InferenceSession" in error_text(e)
        assert "register_custom_ops_library(onnxq.kernels.library_path())" in error_text(e)


def test_registration_is_idempotent_and_the_library_path_is_what_onnxruntime_loads() -> None:
    opts = ort.SessionOptions()
    opts.register_custom_ops_library(library_path())  # the documented way, by hand
    opts.register_custom_ops_library(library_path())
    with pytest.raises(Exception, match="Domain already set"):  # onnxruntime refuses it twice
        _stock_session_with(opts)
    again = register_custom_ops(register_custom_ops(ort.SessionOptions()))
    model = _quant_model("Quantize", "same", [4])
    out = InferenceSession(model.SerializeToString(), again).run(None, {"x": np.ones(4, F32)})[0]
    np.testing.assert_array_equal(out, np.full(4, 131 + 27, np.uint8))  # 1 / 0.037 = 27.03
    assert make_session(model).run(None, {"x": np.zeros(4, F32)})[0].tolist() == [131] * 4


def _stock_session_with(opts: ort.SessionOptions) -> ort.InferenceSession:
    model = _quant_model("Quantize", "same", [4])
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _conv_error(rng: np.random.Generator, edit) -> str:  # type: ignore[no-untyped-def]
    ours, _ = _conv_pair(rng, GEOMETRIES[0], per_channel=True, bias=True, relu=False)
    edit(ours)
    with pytest.raises(Exception) as info:  # onnxruntime's own exception types
        _ours(ours).run(None, {"x": np.zeros(GEOMETRIES[0][:4], F32)})
    return str(info.value)


def _conv_node(m: onnx.ModelProto) -> onnx.NodeProto:
    return next(n for n in m.graph.node if n.op_type == "QLinearConv")


def _set_attr(name: str, value: object):  # type: ignore[no-untyped-def]
    def edit(m: onnx.ModelProto) -> None:
        node = _conv_node(m)
        kept = [a for a in node.attribute if a.name != name]
        node.ClearField("attribute")
        node.attribute.extend(kept)
        if value is not None:
            node.attribute.append(helper.make_attribute(name, value))

    return edit


def _nonzero_weight_zero_point(m: onnx.ModelProto) -> None:
    wz = next(t for t in m.graph.initializer if t.name == "wz")
    wz.CopyFrom(numpy_helper.from_array(np.full(16, 3, np.int8), "wz"))


def _zero_scale(m: onnx.ModelProto) -> None:
    ys = next(t for t in m.graph.initializer if t.name == "ys")
    ys.CopyFrom(numpy_helper.from_array(np.array(0.0, F32), "ys"))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            _set_attr("strides", [1, 1, 1]),
            "onnxq QLinearConv node 'conv': attribute strides has 3 values, expected 2",
        ),
        (_set_attr("qmin", 300), "node 'conv': attribute qmin is 300, expected 0 to 255"),
        (_set_attr("group", None), "node 'conv': group: "),  # the runtime's own message follows
        (_set_attr("group", 3), "node 'conv': group 3 does not divide the 16 output channels"),
        (weight_as_input, "node 'conv': w must be a constant (an initializer)"),
        (_nonzero_weight_zero_point, "node 'conv': w_zero_point[0] is 3; onnxq's conv takes symmetric"),
        (_zero_scale, "node 'conv': y_scale is 0, expected a finite scale > 0"),
    ],
)
def test_bad_attributes_and_inputs_are_errors_naming_the_node(
    rng: np.random.Generator, edit, message: str
) -> None:  # type: ignore[no-untyped-def]
    assert message in _conv_error(rng, edit)


def test_an_input_of_the_wrong_shape_is_an_error_at_run_time_naming_the_node(
    rng: np.random.Generator,
) -> None:
    ours, _ = _conv_pair(rng, GEOMETRIES[0], per_channel=True, bias=True, relu=False)
    ours.graph.input[0].type.tensor_type.ClearField("shape")
    session = _ours(ours)
    with pytest.raises(
        Exception, match=r"onnxq QLinearConv node 'conv': x has 3 channels .* weights expect 8"
    ):
        session.run(None, {"x": np.zeros((1, 3, 9, 9), F32)})
    with pytest.raises(Exception, match="onnxq Quantize node 'in': x has rank 3, the layout change needs 4"):
        session.run(None, {"x": np.zeros((8, 9, 9), F32)})
    assert session.run(None, {"x": np.zeros((1, 8, 1, 1), F32)})[0].shape == (1, 16, 1, 1)  # pads 1: fits


def test_too_old_a_runtime_is_a_clear_error_at_registration() -> None:
    """RegisterCustomOps called as a runtime without C API 18 would: GetApi(18) is NULL, so the
    status comes from version 1's CreateStatus, with the runtime's version in the message."""
    lib = ctypes.CDLL(library_path())
    messages: list[tuple[int, bytes]] = []
    create_status = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_int, ctypes.c_char_p)(
        lambda code, msg: messages.append((code, msg)) or 0x5151
    )
    table = (ctypes.c_void_p * 4)(ctypes.cast(create_status, ctypes.c_void_p))
    asked: list[int] = []

    def get_api(version: int) -> int:
        asked.append(version)
        return ctypes.addressof(table) if version == 1 else 0

    get_api_fn = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_uint32)(get_api)
    version = ctypes.create_string_buffer(b"1.16.3")
    version_fn = ctypes.CFUNCTYPE(ctypes.c_size_t)(lambda: ctypes.addressof(version))
    base = (ctypes.c_void_p * 2)(
        ctypes.cast(get_api_fn, ctypes.c_void_p), ctypes.cast(version_fn, ctypes.c_void_p)
    )
    lib.RegisterCustomOps.restype = ctypes.c_void_p
    lib.RegisterCustomOps.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    status = lib.RegisterCustomOps(None, ctypes.addressof(base))
    assert status == 0x5151 and asked == [18, 1]
    assert messages == [
        (
            1,
            b"onnxq's custom ops need onnxruntime 1.18 or newer (C API version 18); "
            b"this onnxruntime is 1.16.3",
        )
    ]


def _u8_model(
    ours: onnx.NodeProto, stock: onnx.NodeProto, shapes: dict[str, list[int]], inits: list[onnx.TensorProto]
) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """The same uint8 op as ours (on NHWC inputs) and as onnxruntime's (on NCHW inputs)."""

    def model(node: onnx.NodeProto, layout: tuple[int, ...]) -> onnx.ModelProto:
        inputs = [
            helper.make_tensor_value_info(n, TensorProto.UINT8, [s[i] for i in layout])
            for n, s in shapes.items()
        ]
        graph = helper.make_graph(
            [node], "g", inputs, [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits
        )
        return helper.make_model(
            graph,
            opset_imports=[
                helper.make_opsetid("", 17),
                helper.make_opsetid(DOMAIN, OPSET),
                helper.make_opsetid("com.microsoft", 1),
            ],
        )

    return model(ours, (0, 2, 3, 1)), model(stock, (0, 1, 2, 3))


def _compare_u8(
    ours: onnx.ModelProto, stock: onnx.ModelProto, feeds: dict[str, np.ndarray], label: str
) -> None:
    want = _stock(stock).run(None, feeds)[0]
    nhwc = {k: np.ascontiguousarray(v.transpose(0, 2, 3, 1)) for k, v in feeds.items()}
    for threads in (1, 2):
        got = _ours(ours, threads).run(None, nhwc)[0]
        np.testing.assert_array_equal(
            got, want.transpose(0, 2, 3, 1), err_msg=f"{label}, {threads} thread(s)"
        )


def test_qlinearadd_gives_onnxruntimes_bytes(isa: str, rng: np.random.Generator) -> None:
    inits = [
        numpy_helper.from_array(np.array(v, t), n)
        for n, v, t in (
            ("as", 0.031, F32),
            ("az", 120, np.uint8),
            ("bs", 0.017, F32),
            ("bz", 3, np.uint8),
            ("ys", 0.04, F32),
            ("yz", 7, np.uint8),
        )
    ]
    names = ["a", "as", "az", "b", "bs", "bz", "ys", "yz"]
    for relu in (False, True):
        ours = helper.make_node("QLinearAdd", names, ["y"], domain=DOMAIN, qmin=7 if relu else 0, qmax=255)
        stock = helper.make_node("QLinearAdd", names, ["y"], domain="com.microsoft")
        shape = [2, 24, 33, 17]  # 26928 per image: several chunks, and a tail
        o, s = _u8_model(ours, stock, {"a": shape, "b": shape}, inits)
        feeds = {k: rng.integers(0, 256, shape, dtype=np.uint8) for k in ("a", "b")}
        if relu:  # onnxruntime's QLinearAdd has no fused ReLU: clamp its bytes at the zero point
            want = np.maximum(_stock(s).run(None, feeds)[0], 7)
            got = _ours(o, 2).run(
                None, {k: np.ascontiguousarray(v.transpose(0, 2, 3, 1)) for k, v in feeds.items()}
            )[0]
            np.testing.assert_array_equal(got, want.transpose(0, 2, 3, 1))
        else:
            _compare_u8(o, s, feeds, isa)


@pytest.mark.parametrize(
    ("kernel", "strides", "pads", "ceil"),
    [([3, 3], [2, 2], [1, 1, 1, 1], 0), ([2, 2], [2, 2], [0, 0, 0, 0], 1)],
)
def test_maxpool_and_global_average_pool_give_onnxruntimes_bytes(
    isa: str, rng: np.random.Generator, kernel, strides, pads, ceil
) -> None:  # type: ignore[no-untyped-def]
    attrs = {"kernel_shape": kernel, "strides": strides, "pads": pads, "ceil_mode": ceil}
    ours = helper.make_node("MaxPool", ["x"], ["y"], domain=DOMAIN, dilations=[1, 1], **attrs)
    stock = helper.make_node("MaxPool", ["x"], ["y"], **attrs)
    feeds = {"x": rng.integers(0, 256, (3, 16, 15, 15), dtype=np.uint8)}
    _compare_u8(*_u8_model(ours, stock, {"x": [3, 16, 15, 15]}, []), feeds, f"maxpool {isa}")
    inits = [
        numpy_helper.from_array(np.array(v, t), n)
        for n, v, t in (("xs", 0.05, F32), ("xz", 100, np.uint8), ("ys", 0.01, F32), ("yz", 12, np.uint8))
    ]
    names = ["x", "xs", "xz", "ys", "yz"]
    ours = helper.make_node("QLinearGlobalAveragePool", names, ["y"], domain=DOMAIN)
    stock = helper.make_node(
        "QLinearGlobalAveragePool", names, ["y"], domain="com.microsoft", channels_last=0
    )
    _compare_u8(*_u8_model(ours, stock, {"x": [3, 16, 15, 15]}, inits), feeds, f"gap {isa}")


@pytest.mark.parametrize("trans_b", [0, 1])
def test_qgemm_gives_onnxruntimes_bytes(isa: str, rng: np.random.Generator, trans_b: int) -> None:
    m, k, n = 300, 96, 280  # two bands of rows x two ranges of columns on the session's threads
    w = rng.integers(-127, 128, (n, k) if trans_b else (k, n), dtype=np.int8)
    inits = [
        numpy_helper.from_array(np.array(0.03, F32), "as"),
        numpy_helper.from_array(np.array(130, np.uint8), "az"),
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array((rng.random(n) * 0.01 + 0.001).astype(F32), "ws"),
        numpy_helper.from_array(np.zeros(n, np.int8), "wz"),
        numpy_helper.from_array(np.array(0.15, F32), "ys"),
        numpy_helper.from_array(np.array(11, np.uint8), "yz"),
        numpy_helper.from_array(rng.integers(-2000, 2000, n).astype(np.int32), "b"),
    ]
    ours = helper.make_node(
        "QGemm",
        ["a", "as", "az", "w", "ws", "wz", "ys", "yz", "b"],
        ["y"],
        domain=DOMAIN,
        transB=trans_b,
        qmin=0,
        qmax=255,
    )
    stock = helper.make_node(
        "QGemm",
        ["a", "as", "az", "w", "ws", "wz", "b", "ys", "yz"],
        ["y"],
        domain="com.microsoft",
        transB=trans_b,
    )

    def model(node: onnx.NodeProto) -> onnx.ModelProto:
        graph = helper.make_graph(
            [node],
            "g",
            [helper.make_tensor_value_info("a", TensorProto.UINT8, [m, k])],
            [helper.make_tensor_value_info("y", TensorProto.UINT8, None)],
            inits,
        )
        return helper.make_model(
            graph,
            opset_imports=[
                helper.make_opsetid("", 17),
                helper.make_opsetid(DOMAIN, OPSET),
                helper.make_opsetid("com.microsoft", 1),
            ],
        )

    a = {"a": rng.integers(0, 256, (m, k), dtype=np.uint8)}
    want = _stock(model(stock)).run(None, a)[0]
    for threads in (1, 2):
        np.testing.assert_array_equal(_ours(model(ours), threads).run(None, a)[0], want)
