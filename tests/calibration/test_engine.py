"""calibrate(): observed ranges against direct computation, streaming, unreached tensors, bad data."""

from __future__ import annotations

import json
import logging
import tracemalloc
from collections.abc import Iterator

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest

from onnxq.calibration.engine import calibrate
from onnxq.calibration.observers import HistogramObserver, MinMaxObserver, make_observer, observer_names
from onnxq.calibration.result import CalibrationResult
from onnxq.errors import CalibrationDataError

MLP = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[N, 4] x) => (float[N, 2] y) <float[4, 3] w1, float[3] b1, float[3, 2] w2> {
  h = MatMul(x, w1)
  hb = Add(h, b1)
  r = Relu(hb)
  y = MatMul(r, w2)
}
"""


def _mlp() -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    weights = {
        "w1": rng.normal(size=(4, 3)).astype(np.float32),
        "b1": rng.normal(size=3).astype(np.float32),
        "w2": rng.normal(size=(3, 2)).astype(np.float32),
    }
    model = onnx.parser.parse_model(MLP)
    for name, arr in weights.items():
        model.graph.initializer.append(onnx.numpy_helper.from_array(arr, name))
    return model, weights


def _data(n_batches: int = 6, n: int = 5, seed: int = 1) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": (rng.normal(size=(n, 4)) * (i + 1)).astype(np.float32)} for i in range(n_batches)]


def _mlp_reference(weights: dict[str, np.ndarray], x: np.ndarray) -> dict[str, np.ndarray]:
    h = x @ weights["w1"]
    hb = h + weights["b1"]
    r = np.maximum(hb, 0)
    return {"x": x, "h": h, "hb": hb, "r": r, "y": r @ weights["w2"]}


def test_minmax_ranges_match_numpy_forward_pass() -> None:
    model, weights = _mlp()
    data = _data()
    names = ["x", "h", "hb", "r", "y", "w1"]
    observers = {n: MinMaxObserver() for n in names}
    result = calibrate(model, observers, data, progress=False)
    ref = _mlp_reference(weights, np.concatenate([b["x"] for b in data]))
    ref["w1"] = weights["w1"]
    for name in names:
        obs = result.observers[name]
        assert float(obs.min_val) == pytest.approx(float(ref[name].min()), rel=1e-5, abs=1e-6), name
        assert float(obs.max_val) == pytest.approx(float(ref[name].max()), rel=1e-5, abs=1e-6), name
    assert result.num_samples == 30
    assert result.unreached == frozenset() and result.nonfinite == {}


def test_per_channel_and_histogram_observers_see_every_value() -> None:
    model, weights = _mlp()
    data = _data()
    observers = {"hb": make_observer("per_channel_minmax", axis=1), "r": HistogramObserver(bins=256)}
    calibrate(model, observers, data, progress=False)
    ref = _mlp_reference(weights, np.concatenate([b["x"] for b in data]))
    np.testing.assert_allclose(observers["hb"].min_val, ref["hb"].min(axis=0), rtol=1e-5)
    np.testing.assert_allclose(observers["hb"].max_val, ref["hb"].max(axis=0), rtol=1e-5)
    hist = observers["r"]
    assert hist.histogram.sum() == ref["r"].size
    assert hist.max_val == pytest.approx(float(ref["r"].max()), rel=1e-5)


def test_model_is_left_unchanged() -> None:
    model, _ = _mlp()
    before = model.SerializeToString()
    calibrate(model, {"h": MinMaxObserver(), "y": MinMaxObserver()}, _data(), progress=False)
    assert model.SerializeToString() == before


def test_ir_model_outputs_are_restored_and_ranges_agree_with_proto_input() -> None:
    model, _ = _mlp()
    from_proto = {n: MinMaxObserver() for n in ("h", "r", "y")}
    calibrate(model, from_proto, _data(), progress=False)
    irm = ir.from_proto(model)
    outputs_before = [v.name for v in irm.graph.outputs]
    from_ir = {n: MinMaxObserver() for n in ("h", "r", "y")}
    calibrate(irm, from_ir, _data(), progress=False)
    assert [v.name for v in irm.graph.outputs] == outputs_before
    for name in from_proto:
        assert float(from_ir[name].min_val) == float(from_proto[name].min_val)
        assert float(from_ir[name].max_val) == float(from_proto[name].max_val)


def test_ir_model_input_is_accepted() -> None:
    model, weights = _mlp()
    obs = {"y": MinMaxObserver()}
    calibrate(ir.from_proto(model), obs, _data(), progress=False)
    ref = _mlp_reference(weights, np.concatenate([b["x"] for b in _data()]))
    assert float(obs["y"].min_val) == pytest.approx(float(ref["y"].min()), rel=1e-5)


def test_torch_model_ranges_match_torch_forward(export_torch, torch_exporter) -> None:  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.fc = torch.nn.Linear(8, 4)

        def forward(self, x):  # type: ignore[no-untyped-def]
            return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))

    torch.manual_seed(0)
    net = Net().eval()
    model = export_torch(net, (torch.randn(2, 3, 8, 8),), *torch_exporter)
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    relu = next(n for n in model.graph.node if n.op_type == "Relu")
    in_name = model.graph.input[0].name
    out_name = model.graph.output[0].name
    names = [conv.output[0], relu.output[0], out_name]
    observers = {n: MinMaxObserver() for n in names}
    rng = np.random.default_rng(2)
    data = [{in_name: rng.normal(size=(2, 3, 8, 8)).astype(np.float32)} for _ in range(4)]
    result = calibrate(model, observers, data, progress=False)
    x = torch.from_numpy(np.concatenate([b[in_name] for b in data]))
    with torch.no_grad():
        conv_out = net.conv(x)
        ref = {names[0]: conv_out, names[1]: torch.relu(conv_out), names[2]: net(x)}
    for name in names:
        assert float(observers[name].min_val) == pytest.approx(float(ref[name].min()), rel=1e-4, abs=1e-5)
        assert float(observers[name].max_val) == pytest.approx(float(ref[name].max()), rel=1e-4, abs=1e-5)
    assert result.num_samples == 8


def test_static_batch_model_runs_in_its_batch_size() -> None:
    model = onnx.parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 13]> g (float[2, 3] x) => (float[2, 3] y) { y = Neg(x) }'
    )
    obs = {"y": MinMaxObserver()}
    x = np.arange(5 * 3, dtype=np.float32).reshape(5, 3)
    result = calibrate(model, obs, [{"x": x}], progress=False)
    assert result.num_samples == 4  # the fifth sample cannot fill a batch of 2
    assert float(obs["y"].min_val) == -11.0 and float(obs["y"].max_val) == 0.0


IF_MODEL = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[N, 2] x, bool c) => (float[N, 2] y) {
  y = If(c) <
    then_branch = t () => (float[N, 2] ty) { ty = Relu(x) },
    else_branch = e () => (float[N, 2] ey) { ey = Neg(x) }
  >
}
"""


def test_all_nan_tensors_are_unreached_in_branches_too(caplog: pytest.LogCaptureFixture) -> None:
    model = onnx.parser.parse_model(IF_MODEL)
    observers = {"ty": MinMaxObserver(), "y": MinMaxObserver(), "x": MinMaxObserver()}
    # no batch axis for the scalar condition: one leading samples axis on both inputs, fed per sample
    data = [{"x": np.full((3, 1, 2), np.nan, np.float32), "c": np.array([True, True, True])}]
    with caplog.at_level(logging.WARNING):
        result = calibrate(model, observers, data, progress=False)
    assert result.unreached == frozenset({"ty", "y", "x"})
    assert result.nonfinite == {"ty": 6, "y": 6, "x": 6}  # the then-branch ran: its NaNs were seen
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "18 NaN/Inf value(s) ignored in 3 tensor(s)" in warnings[0].getMessage()


def test_tensors_of_the_branches_taken_are_calibrated_and_the_others_unreached() -> None:
    model = onnx.parser.parse_model(IF_MODEL)
    observers = {"ty": MinMaxObserver(), "ey": MinMaxObserver()}
    x = np.array([[[1.0, -2.0]], [[3.0, -4.0]]], np.float32)  # two samples, both take the then-branch
    result = calibrate(model, observers, [{"x": x, "c": np.array([True, True])}], progress=False)
    assert (float(result.observers["ty"].min_val), float(result.observers["ty"].max_val)) == (0.0, 3.0)
    assert result.unreached == frozenset({"ey"})
    both = calibrate(
        model, {"ey": MinMaxObserver()}, [{"x": x, "c": np.array([True, False])}], progress=False
    )
    assert (float(both.observers["ey"].min_val), float(both.observers["ey"].max_val)) == (-3.0, 4.0)


LOOP_MODEL = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[2] x) => (float[2] y) <int64 n = {3}, bool t = {1}> {
  y = Loop <body = b (int64 i, bool cond, float[2] acc) => (bool cond_out, float[2] acc_out) {
      cond_out = Identity(cond)
      fi = Cast <to = 1> (i)
      acc_out = Add(acc, fi)
  }> (n, t, x)
}
"""


def test_tensors_of_a_loop_body_are_seen_at_every_iteration() -> None:
    model = onnx.parser.parse_model(LOOP_MODEL)
    observers = {"acc_out": MinMaxObserver()}
    result = calibrate(model, observers, [{"x": np.zeros(2, np.float32)}], progress=False)
    assert (float(observers["acc_out"].min_val), float(observers["acc_out"].max_val)) == (0.0, 3.0)
    assert result.unreached == frozenset()


def test_nan_in_data_is_counted_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    model, _ = _mlp()
    data = _data()
    data[2]["x"][0, 1] = np.nan
    data[4]["x"][3, 0] = np.inf
    observers = {"x": MinMaxObserver(), "r": MinMaxObserver()}
    with caplog.at_level(logging.WARNING):
        result = calibrate(model, observers, data, progress=False)
    assert result.nonfinite["x"] == 2
    assert result.nonfinite["r"] >= 2  # NaN/Inf propagate through the matmul
    assert np.isfinite(observers["x"].max_val)
    finite = np.concatenate([b["x"] for b in data])
    assert float(observers["x"].max_val) == float(np.nanmax(np.where(np.isinf(finite), np.nan, finite)))
    assert sum(r.levelno == logging.WARNING for r in caplog.records) == 1


def test_unknown_tensor_name_is_an_error() -> None:
    model, _ = _mlp()
    with pytest.raises(ValueError, match="observed tensor 'nope' is not in the model graph"):
        calibrate(model, {"nope": MinMaxObserver()}, _data(), progress=False)


def test_empty_and_mismatched_data_are_calibration_errors() -> None:
    model, _ = _mlp()
    with pytest.raises(CalibrationDataError, match="calibration data is empty"):
        calibrate(model, {"h": MinMaxObserver()}, [], progress=False)
    bad = [{"x": np.zeros((2, 5), np.float32)}]
    with pytest.raises(CalibrationDataError, match=r"input 'x': expected float32\[\?, 4\]"):
        calibrate(model, {"h": MinMaxObserver()}, bad, progress=False)


def _peak_memory(n_batches: int) -> int:
    model, _ = _mlp()

    def stream() -> Iterator[dict[str, np.ndarray]]:
        rng = np.random.default_rng(3)
        for _ in range(n_batches):
            yield {"x": rng.normal(size=(16, 4)).astype(np.float32)}

    observers = {n: HistogramObserver(bins=512) for n in ("h", "hb", "r", "y")}
    tracemalloc.start()
    try:
        calibrate(model, observers, stream(), progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert observers["h"].histogram.sum() == n_batches * 16 * 3
    return peak


def test_memory_does_not_grow_with_the_number_of_batches() -> None:
    few, many = _peak_memory(50), _peak_memory(1000)
    data_bytes = 1000 * 16 * 4 * 4
    assert many < 1.2 * few  # 20 times the data, about the same peak
    assert many - few < data_bytes / 10


def test_progress_logs_when_stderr_is_not_a_tty(caplog: pytest.LogCaptureFixture) -> None:
    model, _ = _mlp()
    with caplog.at_level(logging.INFO, logger="onnxq.calibration.progress"):
        calibrate(model, {"h": MinMaxObserver()}, _data(n_batches=4, n=4), progress=True)
    messages = [r.getMessage() for r in caplog.records if r.name == "onnxq.calibration.progress"]
    assert messages[-1].startswith("calibrating: done, 16/16 samples")


def test_result_round_trips_through_json() -> None:
    model, _ = _mlp()
    observers = {"h": MinMaxObserver(), "r": HistogramObserver(bins=64), "w1": MinMaxObserver(axis=1)}
    result = calibrate(model, observers, _data(), progress=False)
    text = json.dumps(result.state_dict(), allow_nan=False)
    back = CalibrationResult.from_state_dict(json.loads(text))
    assert back.num_samples == 30 and back.unreached == result.unreached
    for name, obs in result.observers.items():
        a = obs.qparams("uint8", False, False)
        b = back.observers[name].qparams("uint8", False, False)
        np.testing.assert_array_equal(a.scale, b.scale)
        np.testing.assert_array_equal(a.zero_point, b.zero_point)


@pytest.mark.slow
def test_model_over_2gb_is_calibrated_through_external_data() -> None:
    n = 540_000_000  # 2.16 GB of float32: beyond the protobuf limit
    big = np.zeros(n, np.float32)
    big[:4] = [-3.0, 1.0, 2.0, 7.5]
    x = ir.Value(name="x", type=ir.TensorType(ir.DataType.FLOAT), shape=ir.Shape(["N", 4]))
    w = ir.Value(name="big", const_value=ir.tensor(big, name="big"))
    w.type, w.shape = ir.TensorType(ir.DataType.FLOAT), ir.Shape([n])
    starts = ir.Value(name="starts", const_value=ir.tensor(np.array([0], np.int64), name="starts"))
    ends = ir.Value(name="ends", const_value=ir.tensor(np.array([4], np.int64), name="ends"))
    sl = ir.Node("", "Slice", [w, starts, ends], name="slice")
    sl.outputs[0].name = "head"
    add = ir.Node("", "Add", [x, sl.outputs[0]], name="add")
    add.outputs[0].name = "y"
    add.outputs[0].type, add.outputs[0].shape = ir.TensorType(ir.DataType.FLOAT), ir.Shape(["N", 4])
    graph = ir.Graph(
        [x], [add.outputs[0]], nodes=[sl, add], initializers=[w, starts, ends], opset_imports={"": 13}
    )
    model = ir.Model(graph, ir_version=8)
    observers = {"head": MinMaxObserver(), "y": MinMaxObserver()}
    data = [{"x": np.ones((3, 4), np.float32)}]
    result = calibrate(model, observers, data, progress=False)
    assert result.num_samples == 3
    assert (float(observers["head"].min_val), float(observers["head"].max_val)) == (-3.0, 7.5)
    assert (float(observers["y"].min_val), float(observers["y"].max_val)) == (-2.0, 8.5)


def _minus_one_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its batch dims written as PaddlePaddle writes them: ``dim_value: -1``."""
    for value in (*model.graph.input, *model.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_value = -1
    return model


def test_minus_one_batch_dims_calibrate_from_files_and_python(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model, _ = _mlp()
    model = _minus_one_batch(model)
    data = _data(n_batches=3, n=5)
    for i, batch in enumerate(data):
        np.savez(tmp_path / f"{i}.npz", **batch)
    from onnxq.calibration.sources import load_calibration_data

    from_files = calibrate(model, {"h": MinMaxObserver()}, load_calibration_data(tmp_path), progress=False)
    from_python = calibrate(model, {"h": MinMaxObserver()}, data, progress=False)
    assert from_files.num_samples == from_python.num_samples == 15
    assert float(from_files.observers["h"].max_val) == float(from_python.observers["h"].max_val)


STREAMING = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[batch, 4] x, int64 sr, float[2, batch, 3] state) => (float[batch, 3] y, float[2, batch, 3] next)
<int64[1] zero = {0}, int64[1] one = {1}, int64[1] three = {3}> {
  srf = Cast <to = 1> (sr)
  scale = Div(srf, srf)
  h = Slice(state, zero, one, zero)
  hs = Squeeze(h, zero)
  xs = Slice(x, zero, three, one)
  sum = Add(xs, hs)
  y = Mul(sum, scale)
  yy = Unsqueeze(y, zero)
  next = Concat <axis = 0> (yy, yy)
}
"""


def test_streaming_model_with_scalar_input_and_state_calibrates_from_python_dicts() -> None:
    model = onnx.parser.parse_model(STREAMING)
    state = np.zeros((2, 1, 3), np.float32)
    runs = []
    for step in range(4):
        runs.append({"x": np.full((1, 4), step, np.float32), "sr": np.array(16000, np.int64), "state": state})
    result = calibrate(model, {"y": MinMaxObserver(), "next": MinMaxObserver()}, runs, progress=False)
    assert result.num_samples == 4
    assert (float(result.observers["y"].min_val), float(result.observers["y"].max_val)) == (0.0, 3.0)


def test_declared_shapes_the_model_does_not_produce_do_not_break_calibration() -> None:
    model = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 4] x) => (float[7] y) { h = Relu(x) y = Neg(h) }
    """)
    model.graph.value_info.append(onnx.helper.make_tensor_value_info("h", onnx.TensorProto.FLOAT, [1, 2, 3]))
    observers = {"h": MinMaxObserver(), "y": MinMaxObserver()}
    result = calibrate(model, observers, [{"x": np.ones((5, 4), np.float32)}], progress=False)
    assert result.num_samples == 5 and float(result.observers["y"].min_val) == -1.0


def _conv(weight_shape: tuple[int, ...], group: int = 1, bias: int | None = None) -> onnx.ModelProto:
    h = onnx.helper
    inits = [onnx.numpy_helper.from_array(np.ones(weight_shape, np.float32), "W")]
    inputs = ["x", "W"]
    if bias is not None:
        inits.append(onnx.numpy_helper.from_array(np.zeros(bias, np.float32), "B"))
        inputs.append("B")
    graph = h.make_graph(
        [h.make_node("Conv", inputs, ["y"], name="conv", group=group), h.make_node("Relu", ["y"], ["z"])],
        "g",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
        [h.make_tensor_value_info("z", onnx.TensorProto.FLOAT, None)],
        inits,
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 13)], ir_version=8)


@pytest.mark.parametrize(
    ("model", "needle"),
    [
        (
            _conv((4, 3, 3, 3), group=2),
            "node 'conv' (Conv): Input channels C is not equal to kernel channels",
        ),
        (_conv((4, 3, 3, 3), bias=3), "bias must be a 1D tensor of size output_channels (4)"),
        (_conv((4, 3, 9, 9)), "(Conv): Invalid input shape"),
    ],
)
def test_onnxruntime_failing_during_the_run_is_one_line_naming_the_samples(model, needle) -> None:
    data = [{"x": np.ones((1, 3, 8, 8), np.float32)}]
    with pytest.raises(CalibrationDataError) as info:
        calibrate(model, {"y": MinMaxObserver()}, data, progress=False)
    message = str(info.value)
    assert message.startswith(
        "onnxruntime failed to run the model on calibration sample 0 (inputs 'x': [1, 3, 8, 8])"
    )
    assert needle in message and "\n" not in message and "[ONNXRuntimeError]" not in message


def _image_model() -> onnx.ModelProto:
    h = onnx.helper
    w = np.random.default_rng(3).normal(size=(4, 3, 3, 3)).astype(np.float32)
    graph = h.make_graph(
        [h.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), h.make_node("Relu", ["c"], ["y"])],
        "images",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 4, "h", "w"])],
        [onnx.numpy_helper.from_array(w, "w")],
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _every_observer(name: str):  # type: ignore[no-untyped-def]
    from onnxq.calibration.observers import observer_supports_axis

    args = {"fixed_qparams": {"scale": 1 / 256, "zero_point": 0}}.get(name, {})
    return make_observer(name, 1 if observer_supports_axis(name) else None, **args)


def _with_output(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    out.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return out


@pytest.mark.parametrize("name", observer_names())
def test_every_observer_takes_inputs_whose_size_varies(name: str) -> None:
    """Images of other sizes from one batch to the next, a sequence of dynamic dims: every
    observer accumulates them, and the result equals the observer fed the same tensors directly."""
    rng = np.random.default_rng(4)
    batches = [
        {"x": rng.normal(size=(n, 3, hh, ww)).astype(np.float32)}
        for n, hh, ww in [(1, 8, 8), (2, 5, 13), (1, 31, 7), (3, 16, 16)]
    ]
    result = calibrate(_image_model(), {"c": _every_observer(name)}, batches, progress=False)
    assert result.num_samples == 7 and result.observers["c"].reached
    sess = ort.InferenceSession(_with_output(_image_model(), "c").SerializeToString())
    direct = _every_observer(name)
    for b in batches:
        for i in range(b["x"].shape[0]):  # the engine may regroup samples; minmax-like results agree
            direct.update(sess.run(["c"], {"x": b["x"][i : i + 1]})[0])
    if not name.startswith("moving_average"):  # moving averages depend on how updates are grouped
        got = result.observers["c"].qparams("uint8", False, False)
        want = direct.qparams("uint8", False, False)
        np.testing.assert_allclose(got.scale, want.scale, rtol=1e-6)
        np.testing.assert_array_equal(got.zero_point, want.zero_point)
