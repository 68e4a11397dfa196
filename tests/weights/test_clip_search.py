"""Least-error block scales: never worse than min-max on the rounding error they minimise, clearly
better on Gaussian blocks, and lower layer-output error for RTN and for GPTQ."""

from __future__ import annotations

import numpy as np
import pytest

from onnxq.planning.weight_only import weight_only_spec
from onnxq.qparams import dequantize, quantize
from onnxq.scheme import PerBlock, PerChannel
from onnxq.weights.clip_search import mse_row_qparams
from onnxq.weights.gptq import gptq_quantize
from onnxq.weights.rtn import quantize_weight, weight_qparams


def _block_error(w, spec, g, mse):
    values, qp = quantize_weight(w, spec, g, mse=mse)
    return np.sum((dequantize(values, qp) - w) ** 2, axis=1)  # per row of w


@pytest.mark.parametrize(
    ("dtype", "symmetric", "at_most"), [("int4", True, 0.92), ("int4", False, 0.97), ("uint4", True, 0.92)]
)
def test_never_worse_than_minmax_and_better_on_gaussian_blocks(dtype, symmetric, at_most) -> None:
    """Symmetric blocks gain most (min-max spends a level on each side); with a zero point the
    range is already tight, and the search still trims its ends."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(256, 32)).astype(np.float32)  # one block per row
    spec = weight_only_spec(dtype, 32, symmetric)
    g = PerBlock(1, 32)
    searched, minmax = _block_error(w, spec, g, True), _block_error(w, spec, g, False)
    assert np.all(searched <= minmax * (1 + 1e-6))
    assert searched.sum() < at_most * minmax.sum(), (searched.sum(), minmax.sum())


def test_a_block_on_the_grid_keeps_its_full_range() -> None:
    w = np.arange(-7, 8, dtype=np.float32)[None] * 0.5  # every value a level of scale 0.5
    qp = mse_row_qparams(w, weight_only_spec("int4", 16, True))
    assert qp.scale.tolist() == [0.5]


def test_padding_of_a_short_block_counts_nothing() -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(size=(8, 40)).astype(np.float32)  # blocks of 32: the second one has 8 values
    spec = weight_only_spec("int4", 32, True)
    qp = weight_qparams(w, spec, PerBlock(1, 32), mse=True)
    tail = mse_row_qparams(w[:, 32:], spec)
    np.testing.assert_array_equal(qp.scale[:, 1], tail.scale)
    int8 = weight_qparams(w, weight_only_spec("int8", 32, True), PerChannel(0), mse=True)
    assert int8.scale.shape == (8,) and np.all(int8.scale <= np.abs(w).max(axis=1) / 127 * (1 + 1e-6))


def _correlated(rng, rows, k):
    mix = np.random.default_rng(7).normal(size=(k, k)) / np.sqrt(k)
    return (rng.normal(size=(rows, k)) @ (np.eye(k) + 2 * mix)).astype(np.float32)


@pytest.mark.parametrize("block", [32, 128])
def test_layer_output_error_lower_for_rtn_and_gptq(block) -> None:
    """The layer's output error ``||X W^T - X Q^T||^2`` on held-out inputs, with least-error
    scales against min-max ones: RTN on isotropic inputs, GPTQ on correlated ones."""
    rng = np.random.default_rng(2)
    n, k = 64, 256
    w = rng.normal(size=(n, k)).astype(np.float32)
    spec, g = weight_only_spec("int4", block, True), PerBlock(1, block)

    def error(x, values, qp):
        return float(np.sum((x @ w.T - x @ dequantize(values, qp).T) ** 2))

    x = rng.normal(size=(512, k)).astype(np.float32)
    rtn = [error(x, *quantize_weight(w, spec, g, mse=mse)) for mse in (True, False)]
    assert rtn[0] < 0.92 * rtn[1], rtn
    calib, held_out = _correlated(rng, 2048, k), _correlated(rng, 512, k)
    h = 2 * calib.T.astype(np.float64) @ calib / len(calib)
    gptq = []
    for mse in (True, False):
        q = gptq_quantize(w, h, spec, g, mse=mse)
        gptq.append(error(held_out, q.values, q.qparams))
    assert gptq[0] < 0.95 * gptq[1], gptq
    check = quantize(w, weight_qparams(w, spec, g, mse=True))  # the layout is min-max's
    assert check.shape == w.shape


@pytest.mark.parametrize(("dtype", "symmetric"), [("int4", True), ("uint4", False), ("int8", True)])
def test_a_weight_searched_in_chunks_on_threads_gets_the_same_parameters(dtype, symmetric) -> None:
    rng = np.random.default_rng(3)
    rows = (rng.standard_normal((1000, 32)) * rng.uniform(0.1, 3.0, (1000, 1))).astype(np.float32)
    rows[5, 20:] = np.nan  # a short last block's padding
    rows[700] = np.nan  # a row with no finite value
    spec = weight_only_spec(dtype, 32, symmetric)
    weights = rng.uniform(0.5, 2.0, 32)
    whole = mse_row_qparams(rows, spec, column_weights=weights)
    chunked = mse_row_qparams(rows, spec, column_weights=weights, chunk_rows=97)  # 11 uneven chunks
    np.testing.assert_array_equal(chunked.scale, whole.scale)
    np.testing.assert_array_equal(chunked.zero_point.astype(np.int32), whole.zero_point.astype(np.int32))
    assert chunked.zero_point.dtype == whole.zero_point.dtype and whole.scale[700] == 1.0
