"""SmoothQuant: the scale maths on arrays, the exact fold into LayerNorm, and the gain on a
transformer block whose LayerNorm output has outlier channels, with per-tensor int8 activations."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxq
from onnxq.accuracy.input_means import ChannelAbsMax
from onnxq.errors import ConfigError
from onnxq.passes.smooth_quant import check_alpha, smooth_layer_norm, smoothing_scales
from onnxq.qconfig import QConfig, QConfigMapping, QSpec
from tests.ptq_models import outputs, sqnr_db

PER_TENSOR = QConfigMapping().set_global(QConfig(QSpec("uint8"), QSpec("int8", symmetric=True)))
D, T = 16, 8
OUTLIERS = (2, 7, 11)
#: Measured (outliers 100x): 8.3 dB without SmoothQuant, 17.7 dB with it (alpha 0.5); the same
#: block without outliers gives 18.3 dB.
MIN_GAIN_DB = 6.0


def test_scales_balance_activation_and_weight_maxima() -> None:
    a, w = np.array([100.0, 1.0, 0.0, 4.0]), np.array([0.01, 1.0, 3.0, 0.0])
    s = smoothing_scales(a, w, 0.5)
    np.testing.assert_allclose(s, [100.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(a[:2] / s[:2], w[:2] * s[:2])  # alpha 0.5: equal maxima
    with pytest.raises(ConfigError, match="alpha"):
        check_alpha(1.5)


def test_layer_norm_fold_keeps_the_product() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, D))
    gamma, beta, w = rng.standard_normal(D), rng.standard_normal(D), rng.standard_normal((D, 3))
    s = rng.uniform(0.1, 10, D)
    g, b, (w2,) = smooth_layer_norm(gamma, beta, [(w, False)], s)
    np.testing.assert_allclose((x * g + b) @ w2, (x * gamma + beta) @ w, rtol=1e-10)
    _, _, (wt,) = smooth_layer_norm(gamma, beta, [(w.T, True)], s)
    np.testing.assert_allclose(wt.T, w2)


def test_channel_abs_max_streams_and_merges() -> None:
    rng = np.random.default_rng(1)
    parts = [rng.standard_normal((2, 3, 4)) for _ in range(3)]
    a, b = ChannelAbsMax(-1), ChannelAbsMax(-1)
    a.update(parts[0])
    a.update(parts[1])
    b.update(parts[2])
    np.testing.assert_allclose(a.merge(b).max, np.abs(np.concatenate(parts)).max(axis=(0, 1)))


def encoder_block(seed: int = 0, scale: float = 100.0) -> onnx.ModelProto:
    """LayerNorm -> (MatMul W1 -> Relu -> MatMul W2) + (MatMul W3) + residual, with LayerNorm's
    outlier channels scaled up ``scale``x and the rows of W1, W3 reading them scaled down: the
    float function is that of the plain block."""
    rng = np.random.default_rng(seed)
    gamma, beta = rng.uniform(0.5, 1.5, D), rng.normal(0, 0.1, D)
    w1, w2, w3 = (rng.standard_normal(s) / np.sqrt(s[0]) for s in ((D, 32), (32, D), (D, D)))
    for c in OUTLIERS:
        gamma[c] *= scale
        beta[c] *= scale
        w1[c] /= scale
        w3[c] /= scale
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for a, n in
             ((gamma, "gamma"), (beta, "beta"), (w1, "w1"), (w2, "w2"), (w3, "w3"))]  # fmt: skip
    nodes = [
        helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["ln"], name="ln", axis=-1),
        helper.make_node("MatMul", ["ln", "w1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "w2"], ["f"], name="fc2"),
        helper.make_node("MatMul", ["ln", "w3"], ["p"], name="proj"),
        helper.make_node("Add", ["f", "p"], ["fp"], name="add1"),
        helper.make_node("Add", ["fp", "x"], ["y"], name="residual"),
    ]
    graph = helper.make_graph(
        nodes, "block",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", T, D])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", T, D])],
        inits,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _data(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, T, D)).astype(np.float32)


def test_smoothing_keeps_the_float_function() -> None:
    model = encoder_block()
    calib = [{"x": _data(2, 16)}]
    smoothed = onnxq.smooth_quant(model, calib, 0.5, progress=False)
    held = _data(3, 8)
    np.testing.assert_allclose(
        outputs(onnxq.io.to_proto(smoothed), held), outputs(model, held), rtol=1e-4, atol=1e-4
    )
    gamma = next(v for v in smoothed.graph.initializers.values() if v.name.startswith("gamma"))
    assert float(np.abs(gamma.const_value.numpy()).max()) < 10  # the outliers moved out


def test_smoothing_improves_per_tensor_int8_on_outlier_channels() -> None:
    model = encoder_block()
    calib = [{"x": _data(4, 1)} for _ in range(32)]
    held = _data(5, 32)
    ref = outputs(model, held)
    plain = onnxq.quantize_static(model, calib, PER_TENSOR, progress=False)
    smooth = onnxq.quantize_static(model, calib, PER_TENSOR, progress=False, smooth_quant_alpha=0.5)
    before, after = sqnr_db(ref, outputs(plain, held)), sqnr_db(ref, outputs(smooth, held))
    ceiling = sqnr_db(
        ref, outputs(onnxq.quantize_static(encoder_block(scale=1.0), calib, PER_TENSOR, progress=False), held)
    )
    assert after > before + MIN_GAIN_DB, (before, after)
    assert after > ceiling - 1.0, (after, ceiling)  # as good as the block without outliers


def test_cli_smooth_quant_writes_the_smoothed_model(tmp_path, capsys) -> None:
    from onnxq.cli import main

    onnx.save(encoder_block(), tmp_path / "block.onnx")
    np.savez(tmp_path / "calib.npz", x=_data(4, 16))
    args = ["quantize", str(tmp_path / "block.onnx"), "-o", str(tmp_path / "q.onnx"), "--per-tensor"]
    args.append("--no-progress")
    assert main([*args, "--calib", str(tmp_path / "calib.npz"), "--smooth-quant"]) == 0
    gammas = [i for i in onnx.load(tmp_path / "q.onnx").graph.initializer if i.name.startswith("gamma")]
    assert float(np.abs(numpy_helper.to_array(gammas[0])).max()) < 10
    assert main([*args, "--calib", str(tmp_path / "calib.npz"), "--smooth-quant", "2"]) == 2
    assert "alpha" in capsys.readouterr().err
