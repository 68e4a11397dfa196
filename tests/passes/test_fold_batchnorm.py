from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onnxq.io import load_model, to_proto
from onnxq.passes.fold_batchnorm import FoldBatchNorm, fold_bn_params
from onnxq.passes.normalize import Normalize

RNG = np.random.default_rng(0)


def _bn_arrays(c: int, rng: np.random.Generator = RNG) -> dict[str, np.ndarray]:
    return {
        "gamma": rng.uniform(0.5, 2.0, c).astype(np.float32),
        "beta": rng.standard_normal(c).astype(np.float32),
        "mean": rng.standard_normal(c).astype(np.float32),
        "var": rng.uniform(0.1, 3.0, c).astype(np.float32),
    }


def _bn_numpy(y: np.ndarray, p: dict[str, np.ndarray], eps: float, axis: int) -> np.ndarray:
    shape = [1] * y.ndim
    shape[axis] = -1
    r = {k: v.astype(np.float64).reshape(shape) for k, v in p.items()}
    return (y - r["mean"]) / np.sqrt(r["var"] + eps) * r["gamma"] + r["beta"]


# ----------------------------------------------------------------------------- pure maths


@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_fold_bn_params_matches_bn_of_gemm(trans_b, with_bias):
    x = RNG.standard_normal((5, 7))
    w = RNG.standard_normal((6, 7) if trans_b else (7, 6)).astype(np.float32)
    b = RNG.standard_normal(6).astype(np.float32) if with_bias else None
    p = _bn_arrays(6)
    w2, b2 = fold_bn_params(w, b, **p, eps=1e-3, axis=0 if trans_b else 1)
    wm = w.T if trans_b else w
    expected = _bn_numpy(x @ wm + (0 if b is None else b), p, 1e-3, axis=1)
    got = x @ (w2.T if trans_b else w2) + b2
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert w2.dtype == np.float32 and b2.dtype == np.float32 and b2.shape == (6,)


def test_fold_bn_params_scales_conv_weight_per_output_channel():
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(4).astype(np.float32)
    p = _bn_arrays(4)
    w2, b2 = fold_bn_params(w, b, **p, eps=1e-5)
    s = p["gamma"] / np.sqrt(p["var"] + 1e-5)
    for c in range(4):
        np.testing.assert_allclose(w2[c], w[c] * s[c], rtol=1e-6)
    np.testing.assert_allclose(b2, (b - p["mean"]) * s + p["beta"], rtol=1e-6)


def test_fold_bn_params_maps_conv_transpose_groups_to_channels():
    groups, cin, cout_g = 2, 4, 3
    w = RNG.standard_normal((cin, cout_g, 2, 2)).astype(np.float32)
    p = _bn_arrays(groups * cout_g)
    w2, _ = fold_bn_params(w, None, **p, eps=1e-5, axis=1, groups=groups)
    s = p["gamma"] / np.sqrt(p["var"] + 1e-5)
    for i in range(cin):
        g = i // (cin // groups)
        for o in range(cout_g):
            np.testing.assert_allclose(w2[i, o], w[i, o] * s[g * cout_g + o], rtol=1e-6)


def test_fold_bn_params_keeps_float16_dtype():
    w = RNG.standard_normal((2, 3)).astype(np.float16)
    w2, b2 = fold_bn_params(w, None, **_bn_arrays(2), eps=1e-5)
    assert w2.dtype == np.float16 and b2.dtype == np.float16


def test_fold_bn_params_rejects_channel_mismatch():
    with pytest.raises(ValueError, match="4 output channels"):
        fold_bn_params(np.zeros((4, 3), np.float32), None, **_bn_arrays(5), eps=1e-5)
    with pytest.raises(ValueError, match="2x3 output channels"):
        fold_bn_params(np.zeros((4, 3, 1), np.float32), None, **_bn_arrays(5), eps=1e-5, axis=1, groups=2)


# ----------------------------------------------------------------------------- hand-built graphs


def _bn_model(
    producer: str,
    x_shape: list[int],
    w: np.ndarray,
    bias: np.ndarray | None,
    channels: int,
    attrs: dict | None = None,
    extra_outputs: int = 0,
    bn_attrs: dict | None = None,
) -> onnx.ModelProto:
    inits = [onnx.numpy_helper.from_array(w, "w")]
    inputs = ["x", "w"]
    if bias is not None:
        inits.append(onnx.numpy_helper.from_array(bias, "b"))
        inputs.append("b")
    for name, arr in _bn_arrays(channels, np.random.default_rng(channels)).items():
        inits.append(onnx.numpy_helper.from_array(arr, name))
    bn_outputs = ["y"] + [f"stat{i}" for i in range(extra_outputs)]
    nodes = [
        oh.make_node(producer, inputs, ["p"], name="prod", **(attrs or {})),
        oh.make_node(
            "BatchNormalization",
            ["p", "gamma", "beta", "mean", "var"],
            bn_outputs,
            name="bn",
            epsilon=1e-3,
            **(bn_attrs or {}),
        ),
        oh.make_node("Relu", ["y"], ["out"], name="act"),
    ]
    graph = oh.make_graph(
        nodes,
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x_shape)],
        [oh.make_tensor_value_info("out", onnx.TensorProto.FLOAT, None)],
        inits,
    )
    opset = 15 if bn_attrs else 13
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)], ir_version=8)


def _fold(model: onnx.ModelProto):
    result = FoldBatchNorm()(load_model(model))
    return result, to_proto(result.model)


CASES = {
    "conv_bias": ("Conv", [2, 3, 6, 6], RNG.standard_normal((4, 3, 3, 3)), True, 4, {}),
    "conv_nobias": ("Conv", [2, 3, 6, 6], RNG.standard_normal((4, 3, 3, 3)), False, 4, {}),
    "conv_depthwise": ("Conv", [2, 4, 6, 6], RNG.standard_normal((4, 1, 3, 3)), True, 4, {"group": 4}),
    "convT": ("ConvTranspose", [2, 4, 5, 5], RNG.standard_normal((4, 3, 2, 2)), True, 3, {}),
    "convT_groups": (
        "ConvTranspose",
        [2, 4, 5, 5],
        RNG.standard_normal((4, 3, 2, 2)),
        False,
        6,
        {"group": 2},
    ),
    "gemm": ("Gemm", [5, 7], RNG.standard_normal((7, 6)), True, 6, {"alpha": 0.5, "beta": 2.0}),
    "gemm_transB": ("Gemm", [5, 7], RNG.standard_normal((6, 7)), True, 6, {"transB": 1}),
    "gemm_nobias": ("Gemm", [5, 7], RNG.standard_normal((6, 7)), False, 6, {"transB": 1}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fold_batchnorm_removes_bn_and_keeps_outputs(case, assert_same_outputs, op_counts):
    producer, x_shape, w, with_bias, channels, attrs = CASES[case]
    bias = RNG.standard_normal(channels).astype(np.float32) if with_bias else None
    model = _bn_model(producer, x_shape, w.astype(np.float32), bias, channels, attrs)
    result, folded = _fold(model)
    assert result.count == 1 and result.notes == ()
    assert op_counts(folded) == {producer: 1, "Relu": 1}
    prod = folded.graph.node[0]
    assert prod.name == "prod" and len(prod.input) == 3
    assert {i.name for i in folded.graph.initializer} == set(prod.input[1:])
    assert_same_outputs(model, folded, optimize=False)


def test_fold_batchnorm_folds_training_outputs_when_unused(assert_same_outputs, op_counts, run_ort):
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    eval_model = _bn_model("Conv", [2, 3, 6, 6], w, None, 4)
    train_model = _bn_model("Conv", [2, 3, 6, 6], w, None, 4, extra_outputs=2, bn_attrs={"training_mode": 1})
    result, folded = _fold(train_model)
    assert result.count == 1 and op_counts(folded) == {"Conv": 1, "Relu": 1}
    assert_same_outputs(eval_model, folded, optimize=False)


def test_fold_batchnorm_keeps_bn_when_training_output_used():
    model = _bn_model(
        "Conv",
        [2, 3, 6, 6],
        RNG.standard_normal((4, 3, 3, 3)).astype(np.float32),
        None,
        4,
        extra_outputs=2,
        bn_attrs={"training_mode": 1},
    )
    model.graph.output.append(oh.make_tensor_value_info("stat0", onnx.TensorProto.FLOAT, None))
    result, folded = _fold(model)
    assert result.count == 0
    assert result.notes == ("BatchNormalization 'bn' stays float: its training output 'stat0' is used",)
    assert [n.op_type for n in folded.graph.node] == ["Conv", "BatchNormalization", "Relu"]


def test_fold_batchnorm_keeps_bn_after_non_linear_producer(model_from_text, op_counts, assert_same_outputs):
    model = model_from_text("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2, 3, 4, 4] x) => (float[2, 3, 4, 4] y)
          <float[3] s = {1.0, 2.0, 3.0}, float[3] b = {0.1, 0.2, 0.3},
           float[3] m = {0.5, 0.0, -0.5}, float[3] v = {1.0, 4.0, 9.0}> {
            r = Relu(x)
            y = BatchNormalization(r, s, b, m, v)
        }
    """)
    result, folded = _fold(model)
    assert result.count == 0
    assert len(result.notes) == 1 and "stays float: its input comes from Relu" in result.notes[0]
    assert op_counts(folded) == {"Relu": 1, "BatchNormalization": 1}
    assert_same_outputs(model, folded)


def test_fold_batchnorm_keeps_bn_when_producer_output_shared(op_counts):
    model = _bn_model("Conv", [2, 3, 6, 6], RNG.standard_normal((4, 3, 3, 3)).astype(np.float32), None, 4)
    model.graph.output.append(oh.make_tensor_value_info("p", onnx.TensorProto.FLOAT, None))
    result, folded = _fold(model)
    assert result.count == 0 and "has other readers" in result.notes[0]
    assert op_counts(folded)["BatchNormalization"] == 1


def test_fold_batchnorm_keeps_bn_when_weight_not_constant(op_counts):
    model = _bn_model("Conv", [2, 3, 6, 6], RNG.standard_normal((4, 3, 3, 3)).astype(np.float32), None, 4)
    model.graph.input.append(oh.make_tensor_value_info("w", onnx.TensorProto.FLOAT, [4, 3, 3, 3]))
    result, _ = _fold(model)
    assert result.count == 0 and "weight of Conv 'prod' is not a constant" in result.notes[0]


def test_fold_batchnorm_does_not_modify_shared_weight(model_from_text, assert_same_outputs):
    w = RNG.standard_normal((4, 3, 1, 1)).astype(np.float32)
    model = _bn_model("Conv", [2, 3, 6, 6], w, None, 4)
    model.graph.node.append(oh.make_node("Conv", ["x", "w"], ["p2"], name="other"))
    model.graph.output.append(oh.make_tensor_value_info("p2", onnx.TensorProto.FLOAT, None))
    result, folded = _fold(model)
    assert result.count == 1
    assert "w" in {i.name for i in folded.graph.initializer}
    assert_same_outputs(model, folded, optimize=False)


# The fixture only hands out a stateless function, so sharing it across examples is safe.
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    transpose=st.booleans(),
    groups=st.sampled_from([1, 2, 3]),
    per_group_in=st.integers(1, 3),
    per_group_out=st.integers(1, 3),
    kernel=st.integers(1, 3),
    with_bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_fold_batchnorm_matches_onnxruntime_for_any_conv_layout(
    assert_same_outputs, transpose, groups, per_group_in, per_group_out, kernel, with_bias, seed
):
    rng = np.random.default_rng(seed)
    cin, cout = groups * per_group_in, groups * per_group_out
    shape = (cin, per_group_out, kernel, kernel) if transpose else (cout, per_group_in, kernel, kernel)
    w = rng.standard_normal(shape).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32) if with_bias else None
    op = "ConvTranspose" if transpose else "Conv"
    model = _bn_model(op, [1, cin, 4, 4], w, bias, cout, {"group": groups})
    result, folded = _fold(model)
    assert result.count == 1 and [n.op_type for n in folded.graph.node] == [op, "Relu"]
    assert_same_outputs(model, folded, optimize=False)


# ----------------------------------------------------------------------------- real exports


def _torch_net(kind: str):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    if kind == "conv":
        net = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, groups=4, bias=False),
            nn.BatchNorm2d(8),
        )
        x = torch.randn(2, 3, 8, 8)
    elif kind == "convT":
        net = nn.Sequential(nn.ConvTranspose2d(4, 6, 2, stride=2, groups=2), nn.BatchNorm2d(6), nn.ReLU())
        x = torch.randn(2, 4, 5, 5)
    else:
        net = nn.Sequential(nn.Linear(10, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, 3))
        x = torch.randn(4, 10)
    for m in net.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            with torch.no_grad():
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-1, 1)
    return net.eval(), x


EXPORT_VARIANTS = {
    "torchscript13_nofold": ("torchscript", 13, {"do_constant_folding": False}),
    "torchscript17_training": ("torchscript", 17, {"training": "TRAINING"}),
    "torchscript13_training": ("torchscript", 13, {"training": "TRAINING"}),
    "torchscript9_opset": ("torchscript", 9, {"do_constant_folding": False}),
    "dynamo18_unoptimized": ("dynamo", 18, {"optimize": False}),
    "dynamo20_unoptimized": ("dynamo", 20, {"optimize": False}),
}


@pytest.mark.parametrize("kind", ["conv", "convT", "linear"])
@pytest.mark.parametrize("variant", sorted(EXPORT_VARIANTS))
def test_fold_batchnorm_folds_every_bn_of_real_exports(kind, variant, export_torch, run_ort, op_counts):
    torch = pytest.importorskip("torch")
    exporter, opset, options = EXPORT_VARIANTS[variant]
    options = dict(options)
    if "training" in options:
        options["training"] = torch.onnx.TrainingMode.TRAINING
    net, x = _torch_net(kind)
    exported = export_torch(net, (x,), exporter, opset, **options)
    with torch.no_grad():  # after the export: a training-mode export updates the running statistics
        expected = net.eval()(x).numpy()
    assert op_counts(exported).get("BatchNormalization", 0) >= 1
    model = Normalize()(load_model(exported)).model
    result = FoldBatchNorm()(model)
    folded = to_proto(result.model)
    assert "BatchNormalization" not in op_counts(folded), result.notes
    assert result.count == op_counts(exported)["BatchNormalization"]
    feed_name = folded.graph.input[0].name
    for optimize in (False, True):
        (got,) = run_ort(folded, {feed_name: x.numpy()}, optimize=optimize)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(expected).max()))


@pytest.mark.parametrize(
    ("var", "eps", "gamma"),
    [(-1.0, 1e-5, 1.0), (0.0, 0.0, 1.0), (float("nan"), 1e-5, 1.0), (1.0, 1e-5, float("inf"))],
)
def test_fold_bn_params_refuses_parameters_no_bn_has(var, eps, gamma):
    w = np.ones((2, 1, 1, 1), np.float32)
    vec = np.ones(2)
    with pytest.raises(ValueError, match=r"finite with variance \+ epsilon > 0"):
        fold_bn_params(w, None, vec * gamma, vec, vec, vec * var, eps)


def test_fold_bn_params_refuses_parameters_of_other_shapes():
    w = np.ones((2, 1, 1, 1), np.float32)
    with pytest.raises(ValueError, match="vectors of one length"):
        fold_bn_params(w, None, np.ones(()), np.ones(2), np.ones(2), np.ones(2), 1e-5)
    with pytest.raises(ValueError, match="does not match the BN's 2 channels"):
        fold_bn_params(w, np.ones(3), np.ones(2), np.ones(2), np.ones(2), np.ones(2), 1e-5)


def test_fold_bn_params_passes_a_signalling_nan_weight_through_without_a_warning() -> None:
    import warnings

    w = np.ones((2, 1, 1, 1), np.float32)
    w.reshape(-1)[1] = np.array([0x7F800001], np.uint32).view(np.float32)[0]  # a signalling NaN
    ones, zeros = np.ones(2, np.float32), np.zeros(2, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "invalid value encountered in cast" reached stderr
        folded, bias = fold_bn_params(w, None, ones, zeros, zeros, ones, 0.0)
    assert folded.dtype == np.float32 and np.isnan(folded.reshape(-1)[1]) and folded.reshape(-1)[0] == 1
    assert np.array_equal(bias, zeros)
