"""GPTQ as a pure function: against a slow loop of the OBS updates it stands for, better than RTN on
correlated inputs, the registered method's layouts, and the streaming Hessian accumulator."""

from __future__ import annotations

import numpy as np
import pytest

from onnxq.planning.weight_only import weight_only_spec
from onnxq.qparams import dequantize
from onnxq.scheme import PerBlock, PerChannel
from onnxq.weights.gptq import gptq_quantize
from onnxq.weights.hessian import HessianAccumulator
from onnxq.weights.registry import WeightRequest, get_weight_method
from onnxq.weights.rtn import quantize_weight, weight_qparams


def _slow_gptq(w, h, spec, granularity, percdamp=0.01):
    """GPTQ written as the OBS update it is: after rounding column k, the columns still free (F)
    move by ``-(w_k - q_k) / [H_F^-1]_kk * [H_F^-1]_{k, F}``, with ``H_F^-1`` inverted afresh at
    every step; block parameters from the current weights when a block starts."""
    h = np.array(h, np.float64)
    w = np.array(w, np.float64)
    dead = np.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    h += percdamp * np.mean(np.diag(h)) * np.eye(len(h))
    k = w.shape[1]
    block = granularity.block_size if isinstance(granularity, PerBlock) else None
    qp = None if block else weight_qparams(w.astype(np.float32), spec, granularity)
    q_cols, scales = [], []
    for col in range(k):
        if block and col % block == 0:
            qp = weight_qparams(w[:, col : col + block].astype(np.float32), spec, PerBlock(1, block))
            scales.append(qp.scale)
        q = np.asarray(quantize_weight_column(w[:, col], qp))
        q_cols.append(q)
        free = np.arange(col, k)
        inv = np.linalg.inv(h[np.ix_(free, free)])
        err = w[:, col] - dequantize(q, qp)[:, 0]
        w[:, col:] -= np.outer(err / inv[0, 0], inv[0])
    return np.concatenate(q_cols, axis=1), (np.concatenate(scales, axis=1) if block else qp.scale)


def quantize_weight_column(col, qp):
    from onnxq.qparams import quantize

    return quantize(col[:, None].astype(np.float32), qp)


def _correlated(rng, rows, k, mix_seed=7):
    """Rows of one correlated distribution (the mixing matrix depends on ``mix_seed`` only)."""
    mix = np.random.default_rng(mix_seed).normal(size=(k, k)) / np.sqrt(k)
    return (rng.normal(size=(rows, k)) @ (np.eye(k) + 2 * mix)).astype(np.float32)


@pytest.mark.parametrize(("dtype", "block"), [("int4", 16), ("int4", 32), ("uint4", 16), ("int8", 0)])
def test_matches_the_slow_obs_loop(dtype, block) -> None:
    rng = np.random.default_rng(0)
    n, k = 6, 48
    x = _correlated(rng, 200, k)
    x[:, 5] = 0  # a dead input
    h = 2 * x.T.astype(np.float64) @ x / len(x)
    w = rng.normal(size=(n, k)).astype(np.float32)
    spec = weight_only_spec(dtype, block or 32, dtype != "uint4")
    granularity = PerBlock(1, block) if block else PerChannel(0)
    fast = gptq_quantize(w, h, spec, granularity, lazy_batch=32)
    values, scales = _slow_gptq(w, h, spec, granularity)
    np.testing.assert_array_equal(fast.values.astype(np.int32), values.astype(np.int32))
    np.testing.assert_allclose(fast.qparams.scale, scales, rtol=1e-6)
    assert fast.values.dtype == quantize_weight(w, spec, granularity)[0].dtype  # RTN's types and layout
    assert fast.qparams.scale.shape == weight_qparams(w, spec, granularity).scale.shape


@pytest.mark.parametrize("block", [32, 128])
def test_output_error_below_rtn_on_correlated_inputs(block) -> None:
    rng = np.random.default_rng(1)
    n, k = 64, 256
    calib, held_out = _correlated(rng, 2048, k), _correlated(rng, 512, k)
    w = rng.normal(size=(n, k)).astype(np.float32)
    spec = weight_only_spec("int4", block, True)
    g = PerBlock(1, block)
    h = 2 * calib.T.astype(np.float64) @ calib / len(calib)
    q_gptq = gptq_quantize(w, h, spec, g)
    values, qp = quantize_weight(w, spec, g)

    def error(q_values, q_params):
        return float(np.sum((held_out @ w.T - held_out @ dequantize(q_values, q_params).T) ** 2))

    gptq_error, rtn_error = error(q_gptq.values, q_gptq.qparams), error(values, qp)
    assert gptq_error < 0.75 * rtn_error, (gptq_error, rtn_error)  # GPTQ at most 3/4 of RTN's error


def test_registered_method_keeps_the_matmul_layout() -> None:
    rng = np.random.default_rng(2)
    k, n = 64, 8
    x = _correlated(rng, 300, k)
    h = 2 * x.T.astype(np.float64) @ x / len(x)
    w = rng.normal(size=(k, n)).astype(np.float32)  # a MatMul's [K, N], blocks along axis 0
    spec = weight_only_spec("int4", 32, True)
    method = get_weight_method("gptq")
    q = method(WeightRequest("mm", "MatMul", w, spec, PerBlock(0, 32), hessian=h))
    rtn = get_weight_method("rtn")(WeightRequest("mm", "MatMul", w, spec, PerBlock(0, 32)))
    assert q.values.shape == w.shape and q.qparams.scale.shape == rtn.qparams.scale.shape == (2, n)
    assert q.qparams.granularity == PerBlock(0, 32)
    direct = gptq_quantize(w.T, h, spec, PerBlock(1, 32))
    np.testing.assert_array_equal(q.values.T.astype(np.int8), direct.values.astype(np.int8))
    # without a Hessian (a Conv, a Gather) the method rounds to nearest
    plain = method(WeightRequest("g", "Gather", w, spec, PerBlock(0, 32)))
    np.testing.assert_array_equal(plain.values.astype(np.int8), rtn.values.astype(np.int8))


def test_hessian_accumulator_is_fixed_size_and_merges() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(10, 7, 16)).astype(np.float32)
    whole = HessianAccumulator(16)
    whole.update(x)
    a, b = HessianAccumulator(16), HessianAccumulator(16)
    a.update(x[:3])
    b.update(x[3:])
    merged = a.merge(b)
    rows = x.reshape(-1, 16).astype(np.float64)
    np.testing.assert_allclose(whole.hessian, 2 * rows.T @ rows / len(rows), rtol=1e-12)
    np.testing.assert_allclose(merged.hessian, whole.hessian, rtol=1e-12)
    assert whole.sum.shape == a.sum.shape == (16, 16) and whole.rows == 70
    x[0, 0, 0] = np.nan
    c = HessianAccumulator(16)
    c.update(x)
    assert c.rows == 69 and c.nonfinite_count == 1 and np.isfinite(c.hessian).all()
    with pytest.raises(ValueError, match="last axis has 8"):
        c.update(np.zeros((2, 8)))
