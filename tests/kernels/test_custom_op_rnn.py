"""ai.onnxq DynamicLSTM / DynamicGRU / DynamicRNN (native/src/ort/op_rnn.c) in an onnxruntime session.

Their bytes must be the numpy reference's (onnxq.kernels.reference.rnn.dynamic_rnn) on every ISA,
over directions, ``sequence_lens``, initial states, ``layout`` 0 and 1, GRU's
``linear_before_reset``, per-tensor and per-row weight scales, with and without a bias, and the
same with 1 and 2 intra-op threads. Bad inputs are errors naming the node, never a crash.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxq.kernels.custom_ops import DOMAIN, OPSET
from onnxq.kernels.op_schemas import register_op_schemas
from onnxq.kernels.reference.rnn import GATES, dynamic_rnn
from onnxq.runtime import InferenceSession

F32 = np.float32
T, N, IN, H = 5, 3, 7, 6


def _case(rng: np.random.Generator, kind: str, dirs: int, per_row: bool, bias: bool) -> dict[str, np.ndarray]:
    rows = GATES[kind] * H
    scale = (rng.random(dirs * rows if per_row else 1) * 0.01 + 0.002).astype(F32)
    consts = {
        "W": rng.integers(-127, 128, (dirs, rows, IN), dtype=np.int8),
        "W_scale": scale,
        "W_zero_point": np.zeros(scale.shape, np.int8),
        "R": rng.integers(-127, 128, (dirs, rows, H), dtype=np.int8),
        "R_scale": (scale * 1.5).astype(F32),
        "R_zero_point": np.zeros(scale.shape, np.int8),
    }
    if bias:
        consts["B"] = rng.standard_normal((dirs, 2 * rows)).astype(F32)
    return consts


def _model(
    kind: str, consts: dict[str, np.ndarray], feeds: dict[str, np.ndarray], attrs: dict
) -> onnx.ModelProto:  # type: ignore[type-arg]
    order = ["X", "W", "W_scale", "W_zero_point", "R", "R_scale", "R_zero_point", "B", "sequence_lens",
             "initial_h", "initial_c"]  # fmt: skip
    names = [n if n in consts or n in feeds else "" for n in order]
    while not names[-1]:
        names.pop()
    outs = ["Y", "Y_h", "Y_c"][: 3 if kind == "LSTM" else 2]
    node = helper.make_node(f"Dynamic{kind}", names, outs, domain=DOMAIN, name="rnn0", **attrs)
    elem = {np.dtype(F32): TensorProto.FLOAT, np.dtype(np.int32): TensorProto.INT32}
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(k, elem[v.dtype], list(v.shape)) for k, v in feeds.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, [None] * (4 if o == "Y" else 3)) for o in outs],
        [numpy_helper.from_array(v, k) for k, v in consts.items()],
    )  # fmt: skip
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, OPSET)]
    return helper.make_model(graph, opset_imports=opsets)


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray], threads: int = 1) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _attrs(kind: str, direction: str, layout: int, lbr: int) -> dict[str, object]:
    attrs: dict[str, object] = {"direction": direction, "hidden_size": H, "layout": layout}
    if kind == "GRU":
        attrs["linear_before_reset"] = lbr
    return attrs


def _feeds(
    rng: np.random.Generator, kind: str, dirs: int, layout: int, seq: bool, states: bool
) -> dict[str, np.ndarray]:
    x_shape = (N, T, IN) if layout else (T, N, IN)
    s_shape = (N, dirs, H) if layout else (dirs, N, H)
    feeds = {"X": (rng.standard_normal(x_shape) * 2).astype(F32)}
    if seq:
        feeds["sequence_lens"] = np.array([T, 2, 1][:N], np.int32)
    if states:
        feeds["initial_h"] = rng.standard_normal(s_shape).astype(F32)
        if kind == "LSTM":
            feeds["initial_c"] = rng.standard_normal(s_shape).astype(F32)
    return feeds


def _assert_bits(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.dtype == F32
        np.testing.assert_array_equal(g.view(np.uint32), w.view(np.uint32))


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize(("seq", "states", "per_row", "bias", "lbr"),
                         [(False, False, True, True, 0), (True, True, False, True, 1),
                          (True, False, True, False, 0), (False, True, True, True, 1)])  # fmt: skip
def test_recurrent_ops_are_the_reference_bit_for_bit_on_every_isa_and_thread_count(
    isa: str, rng: np.random.Generator, kind: str, direction: str, layout: int, seq: bool, states: bool,
    per_row: bool, bias: bool, lbr: int,
) -> None:  # fmt: skip
    dirs = 2 if direction == "bidirectional" else 1
    consts = _case(rng, kind, dirs, per_row, bias)
    feeds = _feeds(rng, kind, dirs, layout, seq, states)
    want = dynamic_rnn(
        kind, feeds["X"], consts["W"], consts["W_scale"], consts["R"], consts["R_scale"], consts.get("B"),
        feeds.get("sequence_lens"), feeds.get("initial_h"), feeds.get("initial_c"),
        direction=direction, layout=layout, linear_before_reset=lbr,
    )  # fmt: skip
    model = _model(kind, consts, feeds, _attrs(kind, direction, layout, lbr))
    one = _run(model, feeds, threads=1)
    _assert_bits(one, want)
    _assert_bits(_run(model, feeds, threads=2), one)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("layout", [0, 1])
def test_recurrent_ops_pass_the_checker_and_infer_every_output(kind: str, layout: int) -> None:
    register_op_schemas()
    rng = np.random.default_rng(0)
    consts = _case(rng, kind, 2, True, True)
    feeds = _feeds(rng, kind, 2, layout, False, False)
    model = _model(kind, consts, feeds, _attrs(kind, "bidirectional", layout, 0))
    onnx.checker.check_model(model, full_check=True, check_custom_domain=True)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.graph.output}
    assert shapes["Y"] == ([N, T, 2, H] if layout else [T, 2, N, H])
    assert shapes["Y_h"] == ([N, 2, H] if layout else [2, N, H])


def _bad_feed(name: str, value: np.ndarray):  # type: ignore[no-untyped-def]
    return lambda feeds: {**feeds, name: value}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_bad_feed("X", np.full((T, N, IN), np.nan, F32)), "expected finite values"),
        (_bad_feed("X", np.zeros((T, N, IN + 1), F32)), "X must be float32"),
        (_bad_feed("sequence_lens", np.array([T, 0, 1], np.int32)), "sequence_lens[1] is 0"),
        (_bad_feed("sequence_lens", np.array([T + 1, 1, 1], np.int32)), "sequence_lens[0] is 6"),
        (_bad_feed("initial_h", np.zeros((1, N + 1, H), F32)), "initial_h must be float32 [1, 3, 6]"),
    ],
)
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_bad_inputs_are_errors_naming_the_node(kind: str, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    consts = _case(rng, kind, 1, True, True)
    feeds = edit(_feeds(rng, kind, 1, 0, True, True))
    feeds["sequence_lens"] = feeds["sequence_lens"]
    model = _model(kind, consts, {k: v for k, v in feeds.items()}, _attrs(kind, "forward", 0, 0))
    with pytest.raises(Exception, match=rf"rnn0.*{message.replace('[', '.').replace(']', '.')}"):
        _run(model, feeds)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: {**c, "W_zero_point": np.ones_like(c["W_zero_point"])}, "symmetric weights"),
        (lambda c: {**c, "W_scale": np.zeros(3, F32)}, "w_scale has 3 values"),
        (lambda c: {**c, "R": c["R"][:, :, :-1]}, "R must be int8"),
        (lambda c: {**c, "B": c["B"][:, 1:]}, "B must be float32"),
    ],
)
def test_bad_constants_are_errors_naming_the_node(edit, message: str) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(2)
    consts = edit(_case(rng, "GRU", 1, True, True))
    feeds = _feeds(rng, "GRU", 1, 0, False, False)
    model = _model("GRU", consts, feeds, _attrs("GRU", "forward", 0, 0))
    with pytest.raises(Exception, match=rf"rnn0.*{message}"):
        _run(model, feeds)
