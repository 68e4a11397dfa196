"""The weights of dynamic quantization (onnxq.weights.dynamic), on arrays alone."""

from __future__ import annotations

import numpy as np
import pytest

from onnxq.qconfig import get_default_qconfig
from onnxq.weights.dynamic import gemm_as_matmul, quantize_channels

PER_CHANNEL = get_default_qconfig("per_channel_dynamic").weight
PER_TENSOR = get_default_qconfig("dynamic").weight


def test_quantize_channels_gives_one_symmetric_scale_per_channel_of_two_axes() -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((2, 12, 5)).astype(np.float32)  # [directions, gates * hidden, inputs]
    w[1, 3] *= 50  # one row much wider than the others: its scale must not leak into them
    q = quantize_channels(w, PER_CHANNEL, (0, 1))
    assert q.values.dtype == np.int8 and q.values.shape == w.shape
    assert q.scale.shape == (2, 12) and not q.zero_point.any()
    np.testing.assert_allclose(q.scale, np.abs(w).max(axis=2) / 127, rtol=1e-6)
    assert np.abs(q.values).max(axis=2).min() == 127  # every row uses its full range
    err = np.abs(q.dequantize() - w)
    assert np.all(err <= q.scale[..., None] / 2 + 1e-6)


def test_quantize_channels_per_tensor_has_one_scale() -> None:
    w = np.linspace(-2, 1, 30, dtype=np.float32).reshape(5, 6)
    q = quantize_channels(w, PER_TENSOR, ())
    assert q.scale.shape == () and q.scale == pytest.approx(2 / 127)
    assert np.abs(q.dequantize() - w).max() <= q.scale / 2 + 1e-6


def test_quantize_channels_refuses_axes_that_are_not_adjacent() -> None:
    with pytest.raises(ValueError, match="adjacent"):
        quantize_channels(np.ones((2, 3, 4), np.float32), PER_CHANNEL, (0, 2))


@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("beta", [0.0, 1.0, 0.5])
def test_gemm_as_matmul_computes_what_gemm_does(trans_b: bool, beta: float) -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal((5, 4) if trans_b else (4, 5)).astype(np.float32)
    c = rng.standard_normal(5).astype(np.float32)
    weight, bias = gemm_as_matmul(b, c, 0.75, beta, trans_b)
    expected = 0.75 * a @ (b.T if trans_b else b) + beta * c
    got = a @ weight + (0 if bias is None else bias)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert weight.shape == (4, 5) and weight.flags.c_contiguous
    assert (bias is None) == (beta == 0.0)
