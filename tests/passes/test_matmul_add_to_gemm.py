from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import onnx.helper as oh
import onnx_ir as ir
import pytest

from onnxq.io import load_model, to_proto
from onnxq.passes import run_passes, structural_passes
from onnxq.passes.matmul_add_to_gemm import MatMulAddToGemm
from onnxq.planning.fusion import FusionGroup, find_fusion_groups

RNG = np.random.default_rng(0)


def _model(nodes, inputs, outputs, arrays, opset=13) -> onnx.ModelProto:
    inits = [onnx.numpy_helper.from_array(np.asarray(a, np.float32), n) for n, a in arrays.items()]
    graph = oh.make_graph(
        nodes,
        "g",
        [oh.make_tensor_value_info(n, onnx.TensorProto.FLOAT, s) for n, s in inputs],
        [oh.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in outputs],
        inits,
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)], ir_version=8)
    return model


def _describe(groups: list[FusionGroup]) -> list[tuple[str, tuple[str, ...], str]]:
    return [(g.anchor.op_type, tuple(n.op_type for n in g.absorbed), g.output.name) for g in groups]


def _conv_then(*nodes: onnx.NodeProto, extra_outputs: tuple[str, ...] = ()) -> onnx.ModelProto:
    arrays = {"w": RNG.standard_normal((4, 3, 3, 3)), "b": RNG.standard_normal(4), "lo": 0.0, "hi": 6.0}
    conv = oh.make_node("Conv", ["x", "w", "b"], ["c"], name="conv")
    last = nodes[-1].output[0] if nodes else "c"
    return _model([conv, *nodes], [("x", [2, 3, 6, 6])], [last, *extra_outputs], arrays)


@pytest.mark.parametrize(
    ("activation", "absorbed"),
    [
        (oh.make_node("Relu", ["c"], ["y"]), ("Relu",)),
        (oh.make_node("Clip", ["c", "lo", "hi"], ["y"]), ("Clip",)),
        (oh.make_node("Clip", ["c", "", "hi"], ["y"]), ("Clip",)),
        (oh.make_node("LeakyRelu", ["c"], ["y"], alpha=0.1), ("LeakyRelu",)),
        (oh.make_node("Sigmoid", ["c"], ["y"]), ()),
        (oh.make_node("Clip", ["lo", "c", "hi"], ["y"]), ()),
    ],
    ids=["relu", "relu6", "clip_max_only", "leaky", "sigmoid_not_fused", "clip_bound_not_fused"],
)
def test_find_fusion_groups_absorbs_supported_activation(activation, absorbed):
    model = load_model(_conv_then(activation))
    groups = find_fusion_groups(model.graph)
    assert _describe(groups) == [("Conv", absorbed, "y" if absorbed else "c")]
    assert groups[0].activation is (groups[0].absorbed[0] if absorbed else None)
    assert groups[0].internal_values == ((groups[0].anchor.outputs[0],) if absorbed else ())


def test_find_fusion_groups_skips_clip_with_runtime_bounds():
    clip = oh.make_node("Clip", ["c", "lo", "bound"], ["y"])
    model = _conv_then(clip)
    model.graph.input.append(oh.make_tensor_value_info("bound", onnx.TensorProto.FLOAT, []))
    assert _describe(find_fusion_groups(load_model(model).graph)) == [("Conv", (), "c")]


def test_find_fusion_groups_stops_when_output_has_other_readers():
    relu = oh.make_node("Relu", ["c"], ["y"])
    neg = oh.make_node("Neg", ["c"], ["n"])
    model = _conv_then(relu, neg, extra_outputs=("y",))
    assert _describe(find_fusion_groups(load_model(model).graph)) == [("Conv", (), "c")]


def test_find_fusion_groups_stops_when_anchor_output_is_graph_output():
    model = _conv_then(oh.make_node("Relu", ["c"], ["y"]), extra_outputs=("c",))
    assert _describe(find_fusion_groups(load_model(model).graph)) == [("Conv", (), "c")]


def test_fusion_group_is_frozen():
    group = find_fusion_groups(load_model(_conv_then(oh.make_node("Relu", ["c"], ["y"]))).graph)[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        group.output = group.anchor.outputs[0]  # type: ignore[misc]
    assert [n.op_type for n in group.nodes] == ["Conv", "Relu"]


def _matmul_model(x_shape, bias_shape=(5,), bias_first=False, residual=False, act="Relu") -> onnx.ModelProto:
    arrays = {"w": RNG.standard_normal((4, 5)), "b": RNG.standard_normal(bias_shape)}
    add_inputs = ["b", "m"] if bias_first else ["m", "b"]
    inputs = [("x", x_shape)]
    if residual:
        add_inputs = ["m", "r"]
        inputs.append(("r", [*x_shape[:-1], 5]))
    nodes = [
        oh.make_node("MatMul", ["x", "w"], ["m"], name="fc"),
        oh.make_node("Add", add_inputs, ["a"], name="fc_bias"),
        oh.make_node(act, ["a"], ["y"], name="act"),
    ]
    return _model(nodes, inputs, ["y"], arrays)


@pytest.mark.parametrize("bias_first", [False, True])
@pytest.mark.parametrize("bias_shape", [(5,), (1, 5)])
def test_matmul_add_to_gemm_rewrites_2d_matmul_add_to_gemm(
    bias_first, bias_shape, assert_same_outputs, op_counts
):
    model = _matmul_model([3, 4], bias_shape, bias_first)
    assert _describe(find_fusion_groups(load_model(model).graph)) == [("MatMul", ("Add", "Relu"), "y")]
    result = MatMulAddToGemm()(load_model(model))
    fused = to_proto(result.model)
    assert result.count == 1 and result.notes == ()
    assert op_counts(fused) == {"Gemm": 1, "Relu": 1}
    gemm = fused.graph.node[0]
    assert gemm.name == "fc" and list(gemm.input) == ["x", "w", "b"]
    assert _describe(find_fusion_groups(result.model.graph)) == [("Gemm", ("Relu",), "y")]
    for optimize in (False, True):
        assert_same_outputs(model, fused, optimize=optimize)


def test_matmul_add_to_gemm_keeps_3d_matmul_add_and_reports(op_counts, assert_same_outputs):
    model = _matmul_model([2, 3, 4])
    result = MatMulAddToGemm()(load_model(model))
    assert result.count == 0
    assert result.notes == (
        "MatMul 'fc' + Add 'fc_bias' kept (not Gemm): input 'x' is not known to be 2-D (rank 3)",
    )
    assert _describe(find_fusion_groups(result.model.graph)) == [("MatMul", ("Add", "Relu"), "y")]
    assert op_counts(to_proto(result.model)) == {"MatMul": 1, "Add": 1, "Relu": 1}


def test_find_fusion_groups_does_not_absorb_residual_add():
    model = load_model(_matmul_model([3, 4], residual=True))
    assert _describe(find_fusion_groups(model.graph)) == [("MatMul", (), "m")]


def test_find_fusion_groups_ignores_bias_that_is_not_a_vector():
    model = load_model(_matmul_model([3, 4], bias_shape=(3, 5)))
    assert _describe(find_fusion_groups(model.graph)) == [("MatMul", (), "m")]


def test_matmul_add_to_gemm_gemm_output_keeps_graph_output_name(assert_same_outputs):
    arrays = {"w": RNG.standard_normal((4, 5)), "b": RNG.standard_normal(5)}
    nodes = [oh.make_node("MatMul", ["x", "w"], ["m"]), oh.make_node("Add", ["m", "b"], ["y"])]
    model = _model(nodes, [("x", [3, 4])], ["y"], arrays)
    result = MatMulAddToGemm()(load_model(model))
    fused = to_proto(result.model)
    assert [n.op_type for n in fused.graph.node] == ["Gemm"]
    assert [o.name for o in fused.graph.output] == ["y"]
    assert_same_outputs(model, fused)


def test_find_fusion_groups_covers_conv_transpose_and_gemm():
    arrays = {"wt": RNG.standard_normal((3, 2, 2, 2)), "wg": RNG.standard_normal((5, 8))}
    nodes = [
        oh.make_node("ConvTranspose", ["x", "wt"], ["t"]),
        oh.make_node("Relu", ["t"], ["r"]),
        oh.make_node("Flatten", ["r"], ["f"]),
        oh.make_node("Gemm", ["f", "wg"], ["g"], transB=1),
        oh.make_node("LeakyRelu", ["g"], ["y"]),
    ]
    model = load_model(_model(nodes, [("x", [1, 3, 1, 1])], ["y"], arrays))
    assert _describe(find_fusion_groups(model.graph)) == [
        ("ConvTranspose", ("Relu",), "r"),
        ("Gemm", ("LeakyRelu",), "y"),
    ]


def _torch_net():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
            self.conv2 = nn.Sequential(nn.Conv2d(8, 8, 3, groups=8), nn.BatchNorm2d(8), nn.ReLU6())
            self.seq = nn.Sequential(nn.Linear(8, 16), nn.LeakyReLU(0.1))
            self.head = nn.Sequential(nn.Linear(16, 6), nn.ReLU(), nn.Linear(6, 4))

        def forward(self, x):
            y = self.conv2(self.conv1(x))  # [N, 8, 4, 4]
            tokens = self.seq(y.flatten(2).transpose(1, 2))  # 3-D Linear: MatMul + Add
            return self.head(tokens.mean(1))  # 2-D Linear

    torch.manual_seed(0)
    net = Net()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return net.eval(), torch.randn(2, 3, 6, 6)


def test_structural_pipeline_groups_real_exports(export_torch, torch_exporter, run_ort):
    torch = pytest.importorskip("torch")
    net, x = _torch_net()
    exported = export_torch(net, (x,), *torch_exporter)
    model, results = run_passes(load_model(exported), structural_passes())
    assert [type(r.model) for r in results] == [ir.Model] * len(structural_passes())
    groups = find_fusion_groups(model.graph)
    described = [(g.anchor.op_type, tuple(n.op_type for n in g.absorbed)) for g in groups]
    assert described[:2] == [("Conv", ("Relu",)), ("Conv", ("Clip",))]
    assert described[2] in {("MatMul", ("Add", "LeakyRelu")), ("Gemm", ("LeakyRelu",))}
    assert described[3:] == [("Gemm", ("Relu",)), ("Gemm", ())]
    proto = to_proto(model)
    assert "BatchNormalization" not in {n.op_type for n in proto.graph.node}
    with torch.no_grad():
        expected = net(x).numpy()
    for optimize in (False, True):
        (got,) = run_ort(proto, {proto.graph.input[0].name: x.numpy()}, optimize=optimize)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    _, again = run_passes(model, structural_passes())
    assert [r.count for r in again] == [0] * len(again)  # the pipeline is idempotent
