"""Native dynamically quantized LSTM / GRU vs the numpy reference (bit-exact, every ISA present)
and vs onnxruntime's float LSTM / GRU on the dequantized weights (close, not exact: int8)."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import F32, assert_same_bits, ort_session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from onnxq.errors import KernelError
from onnxq.kernels import kernel_table
from onnxq.kernels.reference import rnn as ref
from onnxq.kernels.rnn import gru, lstm, pack_gru_weights, pack_lstm_weights, pack_rnn_weights, rnn


def _weights(seed: int, gates: int, inp: int, hidden: int, bias: bool = True, qmax: int = 127):
    """Float weights quantized symmetric per row to [-qmax, qmax]: (w_q, w_scale, r_q, r_scale, wb, rb)."""
    rng = np.random.default_rng(seed)
    out = []
    for cols in (inp, hidden):
        wf = (rng.standard_normal((gates * hidden, cols)) / np.sqrt(cols)).astype(F32)
        scale = (np.abs(wf).max(axis=1) / qmax).astype(F32)
        out += [np.clip(np.rint(wf / scale[:, None]), -qmax, qmax).astype(np.int8), scale]
    wb = rng.standard_normal(gates * hidden).astype(F32) * F32(0.1) if bias else None
    rb = rng.standard_normal(gates * hidden).astype(F32) * F32(0.1) if bias else None
    return (*out, wb, rb)


def test_kernel_table_lists_vector_activations() -> None:
    rows = {(k.family, k.op, k.isa) for k in kernel_table()}
    for op in ("sigmoid_f32", "tanh_f32"):
        assert {("rnn", op, "scalar"), ("rnn", op, "avx2"), ("rnn", op, "avx512vnni")} <= rows


def test_activations_close_to_libm() -> None:
    x = np.linspace(-30, 30, 20001, dtype=F32)
    ex = np.exp(np.clip(x, -87, 88).astype(np.float64))
    assert np.max(np.abs(ref.exp_f32(x) - ex) / ex) < 3e-7
    assert np.max(np.abs(ref.tanh_f32(x) - np.tanh(x.astype(np.float64)))) < 2e-7
    assert np.max(np.abs(ref.sigmoid_f32(x) - 1 / (1 + np.exp(-x.astype(np.float64))))) < 2e-7
    assert ref.tanh_f32(np.array([0.0, -0.0], F32)).tolist() == [0.0, -0.0]


@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_lstm_matches_reference_bitexact(isa, per_row, bias) -> None:
    hidden, inp, batch, seq = 17, 10, 3, 4
    w, ws, r, rs, wb, rb = _weights(1, 4, inp, hidden, bias)
    rng = np.random.default_rng(2)
    xs = rng.standard_normal((seq, batch, inp)).astype(F32)
    h0 = rng.standard_normal((batch, hidden)).astype(F32) * F32(0.5)
    c0 = rng.standard_normal((batch, hidden)).astype(F32) * F32(0.5)
    y, h, c = lstm(xs, pack_lstm_weights(w, ws, r, rs, wb, rb), h0, c0, per_row=per_row)
    ry, rh, rc = ref.lstm_sequence(xs, h0, c0, w, ws, r, rs, wb, rb, per_row=per_row)
    assert_same_bits(y, ry)
    assert_same_bits(h, rh)
    assert_same_bits(c, rc)
    assert_same_bits(h, y[-1])


@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("linear_before_reset", [False, True])
def test_gru_matches_reference_bitexact(isa, per_row, linear_before_reset) -> None:
    hidden, inp, batch, seq = 19, 8, 2, 5
    w, ws, r, rs, wb, rb = _weights(3, 3, inp, hidden)
    rng = np.random.default_rng(4)
    xs = rng.standard_normal((seq, batch, inp)).astype(F32)
    h0 = rng.standard_normal((batch, hidden)).astype(F32) * F32(0.5)
    packed = pack_gru_weights(w, ws, r, rs, wb, rb, linear_before_reset=linear_before_reset)
    y, h = gru(xs, packed, h0, per_row=per_row)
    ry, rh = ref.gru_sequence(xs, h0, w, ws, r, rs, wb, rb, linear_before_reset, per_row=per_row)
    assert_same_bits(y, ry)
    assert_same_bits(h, rh)


@pytest.mark.parametrize("qmax", [63, 127], ids=["7-bit", "8-bit"])
@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("cell", ["lstm", "gru0", "gru1", "rnn"])
def test_long_sequences_project_inputs_in_chunks_bitexact(isa, cell, per_row, qmax) -> None:
    """The inputs of 256 rows' worth of steps (85 of batch 3) are projected by one GEMM, each step
    quantized alone: 90 steps cross a chunk boundary and end in a partial chunk, with the bytes of
    the reference's step-by-step projections (7-bit weights: AVX2's vpmaddubsw path)."""
    hidden, inp, batch, seq = 9, 7, 3, 90
    gates = {"lstm": 4, "rnn": 1}.get(cell, 3)
    w, ws, r, rs, wb, rb = _weights(5, gates, inp, hidden, qmax=qmax)
    rng = np.random.default_rng(6)
    ramp = np.linspace(0.5, 3, seq, dtype=F32)[:, None, None]  # each step its own range
    xs = rng.standard_normal((seq, batch, inp)).astype(F32) * ramp
    h0 = rng.standard_normal((batch, hidden)).astype(F32) * F32(0.5)
    if cell == "lstm":
        got = lstm(xs, pack_lstm_weights(w, ws, r, rs, wb, rb), h0, h0, per_row=per_row)
        want = ref.lstm_sequence(xs, h0, h0, w, ws, r, rs, wb, rb, per_row=per_row)
    elif cell == "rnn":
        got = rnn(xs, pack_rnn_weights(w, ws, r, rs, wb, rb), h0, per_row=per_row)
        want = ref.rnn_sequence(xs, h0, w, ws, r, rs, wb, rb, per_row=per_row)
    else:
        lbr = cell == "gru1"
        got = gru(xs, pack_gru_weights(w, ws, r, rs, wb, rb, linear_before_reset=lbr), h0, per_row=per_row)
        want = ref.gru_sequence(xs, h0, w, ws, r, rs, wb, rb, lbr, per_row=per_row)
    for g, e in zip(got, want, strict=True):
        assert_same_bits(g, e)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hidden=st.integers(1, 40), inp=st.integers(1, 40), batch=st.integers(1, 4),
       seq=st.integers(1, 3), cell=st.sampled_from(["lstm", "gru0", "gru1"]),
       seed=st.integers(0, 2**31))
def test_rnn_matches_reference_on_random_shapes(isa, hidden, inp, batch, seq, cell, seed) -> None:
    gates = 4 if cell == "lstm" else 3
    w, ws, r, rs, wb, rb = _weights(seed, gates, inp, hidden)
    xs = np.random.default_rng(seed).standard_normal((seq, batch, inp)).astype(F32)
    if cell == "lstm":
        y, _, _ = lstm(xs, pack_lstm_weights(w, ws, r, rs, wb, rb))
        zeros = np.zeros((batch, hidden), F32)
        ry = ref.lstm_sequence(xs, zeros, zeros, w, ws, r, rs, wb, rb)[0]
    else:
        lbr = cell == "gru1"
        y, _ = gru(xs, pack_gru_weights(w, ws, r, rs, wb, rb, linear_before_reset=lbr))
        ry = ref.gru_sequence(xs, np.zeros((batch, hidden), F32), w, ws, r, rs, wb, rb, lbr)[0]
    assert_same_bits(y, ry)


def test_reverse_direction_runs_the_flipped_sequence() -> None:
    hidden, inp, batch, seq = 6, 5, 2, 4
    w, ws, r, rs, wb, rb = _weights(11, 4, inp, hidden)
    xs = np.random.default_rng(12).standard_normal((seq, batch, inp)).astype(F32)
    y, h, c = lstm(xs, pack_lstm_weights(w, ws, r, rs, wb, rb), reverse=True)
    assert c.shape == (batch, hidden)
    zeros = np.zeros((batch, hidden), F32)
    ry, rh, rc = ref.lstm_sequence(xs[::-1], zeros, zeros, w, ws, r, rs, wb, rb)
    assert_same_bits(c, rc)
    assert_same_bits(y, ry[::-1])
    assert_same_bits(h, rh)
    assert_same_bits(h, y[0])
    w, ws, r, rs, wb, rb = _weights(13, 3, inp, hidden)
    y, h = gru(xs, pack_gru_weights(w, ws, r, rs, wb, rb), reverse=True)
    ry, rh = ref.gru_sequence(xs[::-1], zeros, w, ws, r, rs, wb, rb)
    assert_same_bits(y, ry[::-1])
    assert_same_bits(h, y[0])


def _ort_rnn(op: str, xs, w, r, b, h0, c0=None, **attrs) -> np.ndarray:
    seq, batch, inp = xs.shape
    hidden = r.shape[1]
    inits = [numpy_helper.from_array(w[None], "W"), numpy_helper.from_array(r[None], "R"),
             numpy_helper.from_array(b[None], "B"), numpy_helper.from_array(h0[None], "h0")]
    names = ["x", "W", "R", "B", "", "h0"]
    if c0 is not None:
        inits.append(numpy_helper.from_array(c0[None], "c0"))
        names.append("c0")
    node = helper.make_node(op, names, ["y"], hidden_size=hidden, **attrs)
    sess = ort_session([node], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [seq, batch, inp])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], opset=14,
                       initializers=inits)
    return sess.run(None, {"x": xs})[0][:, 0]


@pytest.mark.parametrize("cell", ["lstm", "gru0", "gru1"])
def test_rnn_close_to_onnxruntime_float_cells(cell) -> None:
    hidden, inp, batch, seq = 24, 16, 3, 6
    gates = 4 if cell == "lstm" else 3
    w, ws, r, rs, wb, rb = _weights(7, gates, inp, hidden)
    rng = np.random.default_rng(8)
    xs = rng.standard_normal((seq, batch, inp)).astype(F32)
    h0 = (rng.standard_normal((batch, hidden)) * 0.5).astype(F32)
    c0 = (rng.standard_normal((batch, hidden)) * 0.5).astype(F32)
    wf = (w.astype(F32) * ws[:, None]).astype(F32)
    rf = (r.astype(F32) * rs[:, None]).astype(F32)
    b = np.concatenate([wb, rb])
    if cell == "lstm":
        want = _ort_rnn("LSTM", xs, wf, rf, b, h0, c0)
        got = lstm(xs, pack_lstm_weights(w, ws, r, rs, wb, rb), h0, c0)[0]
    else:
        lbr = int(cell == "gru1")
        want = _ort_rnn("GRU", xs, wf, rf, b, h0, linear_before_reset=lbr)
        got = gru(xs, pack_gru_weights(w, ws, r, rs, wb, rb, linear_before_reset=bool(lbr)), h0)[0]
    err = np.abs(got - want)
    assert got.shape == want.shape == (seq, batch, hidden)
    assert err.max() < 0.02, err.max()
    assert err.mean() < 0.004, err.mean()
    assert np.abs(want).mean() > 0.1  # the comparison is not vacuous


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda p, q: lstm(np.zeros((2, 1, 5), F32), p), "input size 5"),
        (lambda p, q: lstm(np.zeros((0, 1, 4), F32), p), "zero-size"),
        (lambda p, q: lstm(np.zeros((2, 1, 4), F32), p, h0=np.zeros((2, 3), F32)), "h0: expected"),
        (lambda p, q: lstm(np.zeros((2, 4), F32), p), "seq_len, batch, input"),
        (lambda p, q: lstm(np.full((2, 1, 4), np.nan, F32), p), "x\\[0\\] = nan"),
        (lambda p, q: gru(np.zeros((2, 1, 4), F32), q, h0=np.full((1, 3), np.inf, F32)),
         "h0\\[0\\] = inf"),
        (lambda p, q: gru(np.zeros((2, 1, 4), F32), q, h0=np.zeros((1, 4), F32)), "h0: expected"),
        (lambda p, q: pack_lstm_weights(np.zeros((10, 4), np.int8), 1.0, np.zeros((10, 2), np.int8),
                                        1.0), "4 \\* hidden"),
        (lambda p, q: pack_gru_weights(np.zeros((9, 4), np.int8), 1.0, np.zeros((9, 4), np.int8),
                                       1.0), "R has shape"),
        (lambda p, q: pack_lstm_weights(np.zeros((12, 4), np.int8), 1.0, np.zeros((12, 3), np.int8),
                                        1.0, w_bias=np.zeros(5, F32)), "w_bias"),
    ],
)
def test_rnn_rejects_bad_input(call, match) -> None:
    w, ws, r, rs, wb, rb = _weights(0, 4, 4, 3)
    packed_lstm = pack_lstm_weights(w, ws, r, rs, wb, rb)
    w, ws, r, rs, wb, rb = _weights(0, 3, 4, 3)
    packed_gru = pack_gru_weights(w, ws, r, rs, wb, rb)
    with pytest.raises(KernelError, match=match):
        call(packed_lstm, packed_gru)
