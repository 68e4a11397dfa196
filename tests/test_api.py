"""Tests of the Python API (onnxq.api): prepare / calibrate / convert and quantize_static."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from onnxq.api import PreparedModel, prepare, quantize_static
from onnxq.errors import CalibrationDataError, ConfigError, ModelLoadError
from onnxq.io import load_model
from onnxq.passes.uint8_twin import exact_on_onnxruntime
from onnxq.qconfig import PerChannel, QConfig, QConfigMapping, QSpec, get_default_qconfig

torch = pytest.importorskip("torch")

MINMAX = QConfig(
    QSpec(observer="minmax"), QSpec("int8", symmetric=True, granularity=PerChannel(), observer="minmax")
)
HEADER = '<ir_version: 8, opset_import: ["" : 17]>'


class SmallNet(torch.nn.Module):
    """Conv-BN-ReLU, depthwise Conv + ReLU6 with a residual Add, MaxPool, Linear, Sigmoid."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(8 * 4 * 4, 10)
        with torch.no_grad():  # non-trivial BN statistics so that folding matters
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        y = torch.nn.functional.relu6(self.dw(y)) + y
        y = self.pool(y).flatten(1)
        return self.fc(y), torch.sigmoid(y[:, :4])


def _batches(name: str, n: int = 4, seed: int = 0, shape=(8, 3, 8, 8)) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{name: rng.standard_normal(shape).astype(np.float32)} for _ in range(n)]


def _export(export_torch, exporter: str = "torchscript", opset: int = 17) -> onnx.ModelProto:
    torch.manual_seed(0)
    return export_torch(SmallNet(), (torch.randn(8, 3, 8, 8),), exporter, opset)


def _relative_error(fp32: onnx.ModelProto, qdq: onnx.ModelProto, feeds, run_ort, optimize: bool) -> float:
    worst = 0.0
    for e, g in zip(run_ort(fp32, feeds, optimize), run_ort(qdq, feeds, optimize), strict=True):
        assert e.shape == g.shape and e.dtype == g.dtype
        worst = max(worst, float(np.max(np.abs(g - e)) / np.max(np.abs(e))))
    return worst


def test_quantize_static_torch_model_is_qdq_and_close_to_fp32(
    export_torch, torch_exporter, run_ort, op_counts
) -> None:
    fp32 = _export(export_torch, *torch_exporter)
    name = fp32.graph.input[0].name
    qdq = quantize_static(fp32, _batches(name), "x86", progress=False)
    ops = op_counts(qdq)
    assert "BatchNormalization" not in ops
    assert ops["Conv"] == 2 and ops["QuantizeLinear"] >= 6
    inits = {t.name: numpy_helper.to_array(t) for t in qdq.graph.initializer}
    producers = {o: n for n in qdq.graph.node for o in n.output}
    for conv in (n for n in qdq.graph.node if n.op_type in ("Conv", "Gemm")):
        w_dq = producers[conv.input[1]]
        assert w_dq.op_type == "DequantizeLinear" and inits[w_dq.input[0]].dtype == np.int8
        assert inits[producers[conv.input[2]].input[0]].dtype == np.int32
        assert producers[conv.input[0]].op_type == "DequantizeLinear"
    for act in (n for n in qdq.graph.node if n.op_type in ("Relu", "Clip")):
        assert producers[act.input[0]].op_type == "Conv"  # no Q/DQ between Conv and its activation
    assert [o.name for o in qdq.graph.output] == [o.name for o in fp32.graph.output]
    feeds = _batches(name, 1, seed=5)[0]
    for optimize in (True, False):
        assert _relative_error(fp32, qdq, feeds, run_ort, optimize) < 0.06


def test_converted_model_is_fused_by_onnxruntime(export_torch, tmp_path: Path, op_counts) -> None:
    fp32 = _export(export_torch)
    qdq = quantize_static(fp32, _batches(fp32.graph.input[0].name), MINMAX, progress=False)
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(qdq.SerializeToString(), options, providers=["CPUExecutionProvider"])
    fused = op_counts(onnx.load(str(tmp_path / "optimized.onnx")))
    assert fused.get("QLinearConv", 0) == 2 and "Conv" not in fused
    assert fused.get("QGemm", 0) + fused.get("QLinearMatMul", 0) == 1


def test_prepare_accepts_path_proto_and_ir_model_without_changing_it(model_from_text, tmp_path: Path) -> None:
    proto = model_from_text(f"{HEADER}\ng (float[1, 4] x) => (float[1, 4] y) {{ [sig] y = Sigmoid(x) }}")
    path = tmp_path / "m.onnx"
    onnx.save(proto, str(path))
    ir_model = load_model(proto)
    before = onnx.printer.to_text(ir.to_proto(ir_model))
    for source in (proto, path, str(path), ir_model):
        prepared = prepare(source, "qnnpack")
        assert isinstance(prepared, PreparedModel) and prepared.plan.quantized_nodes() == ("sig",)
    assert onnx.printer.to_text(ir.to_proto(ir_model)) == before


def test_quantize_static_accepts_every_qconfig_form(model_from_text, tmp_path: Path, op_counts) -> None:
    proto = model_from_text(f"{HEADER}\ng (float[2, 4] x) => (float[2, 4] y) {{ [add] y = Add(x, x) }}")
    mapping = QConfigMapping(global_qconfig=get_default_qconfig("arm"))
    json_path = tmp_path / "qconfig.json"
    json_path.write_text(json.dumps(mapping.to_dict()))
    batches = [{"x": np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)}]
    for qconfig in ("x86", "qnnpack", MINMAX, mapping, json_path, str(json_path)):
        qdq = quantize_static(proto, batches, qconfig, progress=False)
        assert op_counts(qdq) == {"QuantizeLinear": 2, "DequantizeLinear": 2, "Add": 1}
    with pytest.raises(ConfigError, match="unknown qconfig backend"):
        quantize_static(proto, batches, "avx9000", progress=False)


def test_prepare_reports_bad_model_file(tmp_path: Path) -> None:
    path = tmp_path / "not_a_model.onnx"
    path.write_bytes(b"this is not protobuf at all \xff\xfe")
    with pytest.raises(ModelLoadError, match=r"not_a_model\.onnx"):
        prepare(path)


def _minmax_graph(model_from_text) -> onnx.ModelProto:
    return model_from_text(f"{HEADER}\ng (float[1, 4] x) => (float[1, 4] y) {{ [add] y = Add(x, x) }}")


def test_calibrate_twice_streams_more_samples(model_from_text) -> None:
    prepared = prepare(_minmax_graph(model_from_text), MINMAX)
    prepared.calibrate([{"x": np.full((3, 4), 0.5, np.float32)}], progress=False)
    first = {t.name: numpy_helper.to_array(t) for t in prepared.convert().graph.initializer}
    prepared.calibrate([{"x": np.full((2, 4), -4.0, np.float32)}], progress=False)
    second = {t.name: numpy_helper.to_array(t) for t in prepared.convert().graph.initializer}
    assert prepared.num_samples == 5 and prepared.report.num_samples == 5
    assert float(first["x_scale"]) == pytest.approx(0.5 / 255, rel=1e-6)
    assert float(second["x_scale"]) == pytest.approx(4.5 / 255, rel=1e-6)


def test_convert_before_calibrate_raises(model_from_text) -> None:
    with pytest.raises(CalibrationDataError, match="calibrate"):
        prepare(_minmax_graph(model_from_text), MINMAX).convert()


def test_convert_keeps_prepared_model_float_and_is_repeatable(model_from_text) -> None:
    prepared = prepare(_minmax_graph(model_from_text), MINMAX)
    prepared.calibrate([{"x": np.ones((2, 4), np.float32)}], progress=False)
    first, second = prepared.convert(), prepared.convert()
    assert first.SerializeToString() == second.SerializeToString()
    assert [n.op_type for n in prepared.model.graph] == ["Add"]


def test_unreached_tensor_leaves_consumer_float_and_is_reported(model_from_text, caplog, op_counts) -> None:
    proto = model_from_text(f"""{HEADER}
g (float[1, 4] x) => (float[1, 4] y, float[1, 4] z) {{
    [log] l = Log(x)
    [add] y = Add(l, l)
    [mul] z = Mul(x, x)
}}""")
    prepared = prepare(proto, MINMAX)
    prepared.calibrate([{"x": -np.ones((3, 4), np.float32)}], progress=False)  # log(-1) = NaN
    with caplog.at_level(logging.WARNING):
        qdq = prepared.convert()
    report = prepared.report
    assert report.unreached == ("l", "y")  # y = l + l is all NaN too
    add = next(n for n in report.nodes if n.name == "add")
    assert not add.quantized and "'l' was not reached" in (add.reason or "")
    assert next(n for n in report.nodes if n.name == "mul").quantized
    assert report.nonfinite == {"l": 12, "y": 12}
    assert op_counts(qdq)["QuantizeLinear"] == 2  # x and z only
    assert any("no calibration sample" in r.getMessage() for r in caplog.records)


def test_nan_in_calibration_data_is_counted_with_one_warning(model_from_text, caplog) -> None:
    prepared = prepare(_minmax_graph(model_from_text), MINMAX)
    x = np.ones((4, 4), np.float32)
    x[0, :3] = np.nan
    x[1, 0] = np.inf
    with caplog.at_level(logging.WARNING):
        prepared.calibrate([{"x": x}], progress=False)
        prepared.convert()
    assert prepared.report.nonfinite == {"x": 4, "y": 4}
    assert sum("NaN" in r.getMessage() for r in caplog.records) == 1
    assert prepared.report.quantized[0].name == "add"


def test_none_qconfig_node_stays_float_in_converted_model(export_torch, run_ort) -> None:
    fp32 = _export(export_torch)
    name = fp32.graph.input[0].name
    convs = [d.name for d in prepare(fp32).plan.decisions if d.op_type == "Conv"]
    mapping = QConfigMapping(global_qconfig=get_default_qconfig("x86")).set_node_name(convs[1], None)
    prepared = prepare(fp32, mapping)
    prepared.calibrate(_batches(name), progress=False)
    qdq = prepared.convert()
    inits = {t.name: numpy_helper.to_array(t) for t in qdq.graph.initializer}
    conv = next(n for n in qdq.graph.node if n.name == convs[1])
    assert inits[conv.input[1]].dtype == np.float32  # float weight, no DequantizeLinear
    entry = next(n for n in prepared.report.nodes if n.name == convs[1])
    assert not entry.quantized and "qconfig is None" in (entry.reason or "")
    assert _relative_error(fp32, qdq, _batches(name, 1, seed=3)[0], run_ort, True) < 0.06


def test_quantize_static_writes_no_files(model_from_text, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    quantize_static(_minmax_graph(model_from_text), [{"x": np.ones((2, 4), np.float32)}], progress=False)
    assert list(tmp_path.iterdir()) == []


class TinyAttention(torch.nn.Module):
    """Linear on 3-D inputs (MatMul + bias Add), attention (MatMul of two activations), Softmax."""

    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.out = torch.nn.Linear(d, d)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, -1)
        attention = torch.softmax(q @ k.transpose(-1, -2) / 4.0, -1)
        return self.out(attention @ v)


def test_quantize_static_attention_block_is_close_to_fp32(
    export_torch, torch_exporter, run_ort, op_counts
) -> None:
    torch.manual_seed(0)
    fp32 = export_torch(TinyAttention(), (torch.randn(2, 5, 16),), *torch_exporter)
    name = fp32.graph.input[0].name
    prepared = prepare(fp32, "x86")
    prepared.calibrate(_batches(name, shape=(2, 5, 16)), progress=False)
    qdq = prepared.convert()
    ops = op_counts(qdq)
    assert ops["MatMul"] == 4 and ops["Softmax"] == 1
    quantized = {n.op_type for n in prepared.report.quantized}
    assert {"MatMul", "Softmax"} <= quantized
    producers = {o: n for n in qdq.graph.node for o in n.output}
    softmax = next(n for n in qdq.graph.node if n.op_type == "Softmax")
    q_softmax = next(n for n in qdq.graph.node if n.input[0] == softmax.output[0])
    scale = next(t for t in qdq.graph.initializer if t.name == q_softmax.input[1])
    assert numpy_helper.to_array(scale) == np.float32(1 / 256)  # fixed output range [0, 1]
    for mm in (n for n in qdq.graph.node if n.op_type == "MatMul"):
        assert all(producers[i].op_type == "DequantizeLinear" for i in mm.input)
    feeds = _batches(name, 1, seed=0, shape=(2, 5, 16))[0]  # a calibration batch: rounding error only
    for optimize in (True, False):
        assert _relative_error(fp32, qdq, feeds, run_ort, optimize) < 0.05


def test_prepare_names_unnamed_and_duplicate_nodes_keeping_given_names(model_from_text) -> None:
    proto = model_from_text(f"""{HEADER}
g (float[1, 4] x) => (float[1, 4] y) {{
    a = Add(x, x)
    [dup] b = Mul(a, a)
    [dup] c = Add(b, b)
    [keep] y = Sigmoid(c)
}}""")
    names = [d.name for d in prepare(proto, MINMAX).plan.decisions]
    assert len(set(names)) == 4 and all(names)
    assert names[1] == "dup" and names[3] == "keep" and names[2] != "dup"


def test_quantize_static_rejects_empty_calibration_set(model_from_text) -> None:
    with pytest.raises(CalibrationDataError, match="empty"):
        quantize_static(_minmax_graph(model_from_text), [], MINMAX, progress=False)


def test_qconfig_by_op_type_uses_type_of_user_model_after_matmul_to_gemm(model_from_text) -> None:
    proto = model_from_text(f"""{HEADER}
g (float[2, 3] x) => (float[2, 2] y) <float[3, 2] w = {{1, 2, 3, 4, 5, 6}}, float[2] b = {{1, -1}}> {{
    [mm] t = MatMul(x, w)
    [bias] y = Add(t, b)
}}""")
    quantized = prepare(proto, MINMAX)
    assert [(d.name, d.op_type) for d in quantized.plan.decisions] == [("mm", "Gemm")]
    assert quantized.plan.quantized_nodes() == ("mm",)
    mapping = QConfigMapping(global_qconfig=MINMAX).set_op_type("MatMul", None)
    decision = prepare(proto, mapping).plan.decisions[0]
    assert decision.op_type == "Gemm" and "qconfig is None" in (decision.reason or "")


def test_if_branches_are_quantized_where_calibration_took_them(model_from_text, op_counts) -> None:
    weights = ", ".join(str(0.05 * (i - 8)) for i in range(16))
    proto = model_from_text(f"""{HEADER}
g (float[2, 4] x, bool c) => (float[2, 4] y)
<float[4, 4] w = {{{weights}}}>
{{
    [mm] h = MatMul(x, w)
    [branch] y = If(c) <
        then_branch = t () => (float[2, 4] a) {{ a = Relu(h) }},
        else_branch = e () => (float[2, 4] b) {{ [inner] b = MatMul(h, w) }}
    >
}}""")
    rng = np.random.default_rng(0)

    def data(conds):  # type: ignore[no-untyped-def]
        return [{"x": rng.standard_normal((1, 2, 4)).astype(np.float32), "c": np.array([c])} for c in conds]

    only_then = prepare(proto, MINMAX)
    only_then.calibrate(data([True] * 8), progress=False)
    only_then.convert()
    inner = next(n for n in only_then.report.nodes if n.name == "inner")
    assert inner.reason == "tensor 'b' was not reached by any calibration sample"
    assert any("no calibration sample took its else_branch" in note for note in only_then.report.pass_notes)

    both = prepare(proto, MINMAX)
    both.calibrate(data([True, False] * 4), progress=False)
    qdq = both.convert()
    assert next(n for n in both.report.nodes if n.name == "inner").quantized
    branch = next(n for n in qdq.graph.node if n.op_type == "If")
    else_branch = next(a.g for a in branch.attribute if a.name == "else_branch")
    assert {n.op_type for n in else_branch.node} >= {"QuantizeLinear", "DequantizeLinear", "MatMul"}
    weight_dq = [n for n in else_branch.node if n.op_type == "DequantizeLinear" and "w" in n.input[0]]
    assert weight_dq and {t.name for t in else_branch.initializer} >= {weight_dq[0].input[0]}  # int8 weight
    for cond in (True, False):
        feeds = {"x": rng.standard_normal((2, 4)).astype(np.float32), "c": np.array(cond)}
        expected = ort.InferenceSession(proto.SerializeToString()).run(None, feeds)[0]
        got = ort.InferenceSession(exact_on_onnxruntime(qdq).SerializeToString()).run(None, feeds)[0]
        assert np.max(np.abs(got - expected)) < 0.05 * np.max(np.abs(expected))


def test_depth_to_space_keeps_its_input_qparams_and_adds_no_error(export_torch, run_ort, op_counts) -> None:
    op = "DepthToSpace"  # torch's pixel_shuffle; pixel_unshuffle exports as Reshape/Transpose

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.b = torch.nn.Conv2d(2, 4, 1)

        def forward(self, x):
            y = torch.relu(self.a(x))
            return self.b(torch.nn.functional.pixel_shuffle(y, 2))

    torch.manual_seed(0)
    proto = export_torch(Net(), (torch.randn(8, 3, 8, 8),), "torchscript", 17)
    assert op_counts(proto)[op] == 1
    qmodel = quantize_static(proto, _batches(proto.graph.input[0].name), MINMAX, progress=False)
    (node,) = [n for n in qmodel.graph.node if n.op_type == op]
    producers = {o: n for n in qmodel.graph.node for o in n.output}
    assert producers[node.input[0]].op_type == "DequantizeLinear"
    (consumer,) = [n for n in qmodel.graph.node if node.output[0] in n.input]
    assert consumer.op_type == "QuantizeLinear"
    dq_in = producers[producers[node.input[0]].input[0]]  # the Q feeding our input's DQ
    assert consumer.input[1:] == dq_in.input[1:]  # same scale and zero point initializers
    # The rearranged values are already on the input's grid, so its Q/DQ pair adds no error: the
    # result equals the model where the op is left in float.
    as_float = QConfigMapping(global_qconfig=MINMAX).set_op_type(op, None)
    reference = quantize_static(proto, _batches(proto.graph.input[0].name), as_float, progress=False)
    ref_producers = {o: n for n in reference.graph.node for o in n.output}
    (ref_node,) = [n for n in reference.graph.node if n.op_type == op]
    (ref_q,) = [n for n in reference.graph.node if ref_node.output[0] in n.input]
    assert ref_q.input[1] != ref_producers[ref_node.input[0]].input[1]  # float: its own observed scale
    feeds = _batches(proto.graph.input[0].name, n=1, seed=1)[0]
    for optimize in (False, True):
        np.testing.assert_allclose(
            run_ort(qmodel, feeds, optimize)[0], run_ort(reference, feeds, optimize)[0], rtol=0, atol=1e-5
        )
        assert _relative_error(proto, qmodel, feeds, run_ort, optimize) < 0.2


def test_float_outputs_drops_only_the_unread_outputs_qdq_and_runs_on_onnxruntime() -> None:
    from tests.ptq_models import gemm_batches, sqnr_db, two_gemm_model

    fp32, calib, held = two_gemm_model(), gemm_batches(16, seed=1), gemm_batches(8, seed=2)
    prepared = prepare(fp32, "x86", float_outputs=True)
    prepared.calibrate(calib, progress=False)
    q = prepared.convert()
    producers = {out: node for node in q.graph.node for out in node.output}
    fc2 = producers["y"]
    assert fc2.op_type == "Gemm"  # y comes straight from the Gemm: no Q/DQ after it
    assert [producers[i].op_type for i in fc2.input] == ["DequantizeLinear"] * 3  # input, weight, bias
    assert producers["h"].op_type == "DequantizeLinear"  # h is read by fc2 as well: quantized
    assert prepared.report.float_outputs == ("y",)
    assert prepared.report.to_dict()["float_outputs"] == ["y"]
    assert "graph outputs kept float (float_outputs): y" in prepared.report.format()
    assert prepared.plan_for(prepared.mapping).float_outputs == {"fc2": ("y",)}  # fallback trials too
    default = quantize_static(fp32, calib, "x86", progress=False)
    runs = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
            for m in (fp32, q, default)]  # fmt: skip
    ref, kept, rounded = (np.concatenate([r.run(["y"], f)[0] for f in held]) for r in runs)
    assert sqnr_db(ref, kept) > sqnr_db(ref, rounded)  # one rounding less (h's noise dominates here)
