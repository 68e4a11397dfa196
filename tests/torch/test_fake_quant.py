"""Tests of onnxq.torch.fake_quant against onnxq's numpy quantization: weights round to the integers
the converter stores, biases to its int32 grid, and the rounding passes gradients straight through."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from onnxq.qconfig import QSpec  # noqa: E402
from onnxq.qparams import choose_qparams, fake_quantize, quantize_bias  # noqa: E402
from onnxq.scheme import PerChannel  # noqa: E402
from onnxq.torch.fake_quant import fake_quantize_bias, fake_quantize_weight, weight_qparams  # noqa: E402


@pytest.mark.parametrize("dtype", ["int4", "int8"])
@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
def test_weight_fake_quant_equals_onnxq_rounding(dtype: str, per_channel: bool) -> None:
    w = np.random.default_rng(0).normal(size=(6, 3, 3, 3)).astype(np.float32)
    w[2] *= 10.0  # one wide channel: per tensor, the others get few levels
    spec = QSpec(dtype, symmetric=True)
    flat = w.reshape(6, -1) if per_channel else w.reshape(1, -1)
    granularity = PerChannel(axis=0) if per_channel else spec.granularity
    lo, hi = (flat.min(axis=1), flat.max(axis=1)) if per_channel else (flat.min(), flat.max())
    qp = choose_qparams(lo, hi, dtype, True, False, granularity)
    expected = fake_quantize(w, qp)
    got = fake_quantize_weight(torch.from_numpy(w), spec, per_channel).numpy()
    np.testing.assert_array_equal(got, expected)
    scale, _ = weight_qparams(torch.from_numpy(w), spec, per_channel)
    np.testing.assert_array_equal(scale.reshape(-1).numpy(), np.asarray(qp.scale).reshape(-1))


def test_bias_fake_quant_equals_onnxq_int32_bias() -> None:
    rng = np.random.default_rng(1)
    b = rng.normal(size=8).astype(np.float32)
    s_in = np.float32(0.0173)
    s_w = (rng.uniform(0.001, 0.05, size=8)).astype(np.float32)
    b[3] = 0.5 * s_in * s_w[3] * 7  # a tie: half to even, as np.rint
    q, b_scale = quantize_bias(b, s_in, s_w)
    w_scale = torch.from_numpy(s_w).reshape(-1, 1, 1, 1)  # shaped as weight_qparams gives it
    got = fake_quantize_bias(torch.from_numpy(b), torch.tensor(s_in), w_scale)
    np.testing.assert_array_equal(got.numpy(), (q.astype(np.float64) * b_scale).astype(np.float32))
    assert not np.array_equal(got.numpy(), b)  # the grid is coarse enough to move every value


def test_bias_fake_quant_passes_the_gradient_straight_through() -> None:
    b = torch.tensor([0.3, -1.2, 2.5], requires_grad=True)
    fake_quantize_bias(b, torch.tensor(0.1), torch.tensor([0.5, 0.25, 1.0])).sum().backward()
    assert b.grad is not None
    np.testing.assert_array_equal(b.grad.numpy(), np.ones(3, dtype=np.float32))
