"""The binding boundary never crashes the process: packed-weight objects whose fields disagree with
their buffer, corrupted packed headers, short / wrongly typed / non-contiguous arrays, non-finite
activations and absurd thread counts all give a one-line KernelError naming the argument (checked
in Python) and an error status from C (checked again there, when the Python layer is bypassed).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from _helpers import F32, assert_same_bits

from onnxq.errors import KernelError
from onnxq.kernels import (
    GruWeights,
    LstmWeights,
    PackedConvWeights,
    PackedDynamicWeights,
    PackedGemmWeights,
    avgpool,
    conv_u8s8_nhwc,
    dequantize,
    dynamic_matmul,
    dynamic_quantize,
    gemm_u8s8,
    global_avgpool,
    gru,
    lstm,
    maxpool,
    pack_conv_weights,
    pack_dynamic_weights,
    pack_gemm_weights,
    pack_gru_weights,
    pack_lstm_weights,
    qadd,
    qconcat,
    quantize,
)
from onnxq.kernels._ffi import ffi, lib
from onnxq.kernels.conv import MAX_THREADS, PreparedConv, release_threads, threads_alive
from onnxq.kernels.reference import dynamic as ref_dynamic
from onnxq.kernels.reference import rnn as ref_rnn

# ---------------------------------------------------------------------------------------------
# 1. PackedGemmWeights: the buffer carries its sizes; fields that disagree are refused


def _gemm_packed(k: int = 4, n: int = 3) -> PackedGemmWeights:
    rng = np.random.default_rng(k * 100 + n)
    return pack_gemm_weights(rng.integers(-128, 128, (k, n)).astype(np.int8))


def test_gemm_fields_disagreeing_with_buffer_are_refused_not_read() -> None:
    packed = _gemm_packed()
    lying = PackedGemmWeights(packed.k, 1 << 24, packed.buffer)  # used to segfault
    with pytest.raises(KernelError, match=r"packed: the buffer holds k=4 x n=3 .* says k=4 x n=16777216"):
        lying.column_sums()
    with pytest.raises(KernelError, match="packed"):
        gemm_u8s8(np.zeros((2, 4), np.uint8), lying, scale=0.1)
    with pytest.raises(KernelError, match="k=4 x n=3"):
        PackedGemmWeights(5, 3, packed.buffer).column_sums()
    with pytest.raises(KernelError, match=r"weights.packed"):
        dynamic_matmul(np.ones((1, 4), F32), PackedDynamicWeights(lying, np.ones(3, F32)))
    assert packed.column_sums().tolist() == packed.column_sums().tolist()  # the real one works


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda b: b[:-1], "truncated"),
        (lambda b: b[:40], "too small"),
        (lambda b: b[::2], "C-contiguous"),
        (lambda b: b.view(np.int8), "dtype uint8"),
        (lambda b: b.tobytes(), "numpy array"),
        (lambda b: b.reshape(-1, 8), "1-D"),
        (lambda b: np.zeros_like(b), "not written by onnxq_gemm_u8s8_pack"),
        (lambda b: np.concatenate([b[:1], b])[1:], "aligned"),
    ],
)
def test_gemm_buffer_of_wrong_kind_is_refused(make, match) -> None:
    packed = _gemm_packed()
    bad = PackedGemmWeights(packed.k, packed.n, make(packed.buffer.copy()))
    with pytest.raises(KernelError, match=match):
        bad.column_sums()
    with pytest.raises(KernelError, match=match):
        gemm_u8s8(np.zeros((2, 4), np.uint8), bad, out_dtype=np.int32)


@pytest.mark.parametrize("field", [("k", 2**70), ("k", "4"), ("n", 3.5), ("n", -1), ("k", None)])
def test_gemm_fields_of_wrong_type_are_refused(field) -> None:
    packed = dataclasses.replace(_gemm_packed(), **{field[0]: field[1]})
    with pytest.raises(KernelError, match=f"packed.{field[0]}"):
        packed.column_sums()


def test_gemm_every_corrupted_header_byte_is_refused_or_harmless() -> None:
    packed = _gemm_packed(70, 20)
    for offset in range(64):  # the header
        for value in (0x00, 0xFF, 0x01):
            buf = packed.buffer.copy()
            buf = np.concatenate([np.zeros(64, np.uint8), buf])[64:]  # keep 64-byte alignment
            if buf.ctypes.data % 8:
                buf = packed.buffer.copy()
            if buf[offset] == value:
                continue
            buf[offset] = value
            try:
                sums = PackedGemmWeights(70, 20, buf).column_sums()
            except KernelError:
                continue
            assert sums.shape == (20,)  # a byte the layout does not depend on (high zeros)


def test_gemm_c_checks_sizes_against_the_callers_fields() -> None:
    # Python's checks bypassed: C itself compares the header with the k / n it is handed.
    packed = _gemm_packed()
    out = np.zeros(1 << 10, np.int32)
    st = lib.onnxq_gemm_u8s8_packed_colsum(
        packed.pointer(), packed.buffer.size, 4, 1 << 24, ffi.from_buffer("int32_t[]", out), out.size
    )
    assert st == lib.ONNXQ_E_SHAPE
    assert "packed weights are k=4 x n=3" in ffi.string(lib.onnxq_last_error()).decode()
    st = lib.onnxq_gemm_u8s8_packed_colsum(packed.pointer(), 100, 4, 3, ffi.from_buffer("int32_t[]", out), 3)
    assert st == lib.ONNXQ_E_ARG  # shorter than the header's total
    assert not out.any()


# ---------------------------------------------------------------------------------------------
# 2. PackedConvWeights: every header offset / length validated in C before use


def _conv_case(groups: int) -> tuple[np.ndarray, PackedConvWeights]:
    rng = np.random.default_rng(groups)
    c = 8
    w = rng.integers(-128, 128, (8, c // groups, 3, 3)).astype(np.int8)
    x = rng.integers(0, 256, (1, 6, 6, c)).astype(np.uint8)
    return x, pack_conv_weights(w, rng.integers(-100, 100, 8).astype(np.int32), 0.01, groups=groups)


def _with_word(packed: PackedConvWeights, byte: int, value: int) -> PackedConvWeights:
    buf = packed.buffer.copy()
    if buf.ctypes.data % 8:  # pragma: no cover - numpy returns aligned copies
        pytest.skip("unaligned copy")
    buf[byte : byte + 8] = np.frombuffer(np.uint64(value).tobytes(), np.uint8)
    return dataclasses.replace(packed, buffer=buf)


@pytest.mark.parametrize("groups", [1, 2, 8], ids=["gemm", "grouped", "depthwise"])
@pytest.mark.parametrize("byte", [64, 72, 80], ids=["bias_off", "scale_off", "weights_off"])
@pytest.mark.parametrize("value", [0, 1, 65, 4096, 1 << 40, 2**64 - 1])
def test_conv_corrupted_section_offsets_are_refused(groups, byte, value) -> None:
    x, packed = _conv_case(groups)
    bad = _with_word(packed, byte, value)
    with pytest.raises(KernelError, match="not written by onnxq_conv_pack"):
        conv_u8s8_nhwc(x, 3, bad, 5, pads=(1, 1, 1, 1))


@pytest.mark.parametrize("groups", [1, 8], ids=["gemm", "depthwise"])
def test_conv_every_corrupted_header_byte_is_refused(groups) -> None:
    x, packed = _conv_case(groups)
    want = conv_u8s8_nhwc(x, 3, packed, 5)
    for offset in range(128):
        buf = packed.buffer.copy()
        buf[offset] ^= 0x40
        with pytest.raises(KernelError):
            conv_u8s8_nhwc(x, 3, dataclasses.replace(packed, buffer=buf), 5)
    np.testing.assert_array_equal(conv_u8s8_nhwc(x, 3, packed, 5), want)


def test_conv_corrupted_group_gemm_header_is_refused() -> None:
    x, packed = _conv_case(2)
    weights_off = int(np.frombuffer(packed.buffer[80:88].tobytes(), np.uint64)[0])
    for word in range(8):
        buf = packed.buffer.copy()
        buf[weights_off + 8 * word + 1] ^= 0x01
        with pytest.raises(KernelError, match="group 0"):
            conv_u8s8_nhwc(x, 3, dataclasses.replace(packed, buffer=buf), 5)


def test_conv_c_validates_header_even_when_python_is_bypassed() -> None:
    x, packed = _conv_case(1)
    conv = PreparedConv(packed, x.shape, 3, 5)
    y = np.full(conv.output_shape, 7, np.uint8)
    packed.buffer[64:72] = np.frombuffer(np.uint64(1 << 40).tobytes(), np.uint8)  # after prepare
    with pytest.raises(KernelError, match="bias_off"):
        conv(x, out=y)
    assert np.all(y == 7)  # nothing written


def test_conv_fields_disagreeing_with_buffer_are_refused() -> None:
    x, packed = _conv_case(1)
    for change in ({"out_channels": 9}, {"groups": 2}, {"kernel_shape": (1, 3)}, {"in_channels": 2**40}):
        with pytest.raises(KernelError, match="packed weights are O=8"):
            PreparedConv(dataclasses.replace(packed, **change), x.shape, 3, 5)
    with pytest.raises(KernelError, match=r"packed.kernel_shape"):
        PreparedConv(dataclasses.replace(packed, kernel_shape=(3,)), x.shape, 3, 5)
    with pytest.raises(KernelError, match=r"packed.buffer: expected a C-contiguous"):
        PreparedConv(dataclasses.replace(packed, buffer=packed.buffer[::-1]), x.shape, 3, 5)


# ---------------------------------------------------------------------------------------------
# 3. LSTM / GRU weights: every array checked (dtype, length, contiguity) in Python and in C


def _rnn_weights(gates: int, inp: int = 4, hidden: int = 3):
    rng = np.random.default_rng(gates)
    w = rng.integers(-127, 128, (gates * hidden, inp)).astype(np.int8)
    r = rng.integers(-127, 128, (gates * hidden, hidden)).astype(np.int8)
    ws = np.full(gates * hidden, 0.01, F32)
    wb = rng.standard_normal(gates * hidden).astype(F32)
    return w, ws, r, ws.copy(), wb, wb[::-1].copy()


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("w_bias", np.ones(2, F32), "weights.w_bias: expected 12 values, got 2"),
        ("r_bias", np.ones(11, F32), "weights.r_bias: expected 12 values, got 11"),
        ("w_bias", np.ones(12, np.float64), "weights.w_bias: expected dtype float32, got float64"),
        ("r_bias", np.ones(24, F32)[::2], "weights.r_bias: expected a C-contiguous"),
        ("w_bias", [0.0] * 12, "weights.w_bias: expected a numpy array"),
        ("hidden", 4, "weights.w: packed weights are K=4 x N=12, expected N=16"),
        ("hidden", 2**62, "weights.hidden"),
    ],
)
def test_lstm_weights_with_bad_fields_are_refused(field, value, match) -> None:
    w, ws, r, rs, wb, rb = _rnn_weights(4)
    good = pack_lstm_weights(w, ws, r, rs, wb, rb)
    with pytest.raises(KernelError, match=match):
        lstm(np.zeros((2, 1, 4), F32), dataclasses.replace(good, **{field: value}))


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("w_bias", np.ones(8, F32), "weights.w_bias: expected 9 values, got 8"),
        ("r_bias", np.ones(9, np.float64), "weights.r_bias: expected dtype float32"),
        ("r_scale", np.ones(6, F32), "weights.r_scale: expected 9 values"),
        ("r_scale", np.ones(18, F32)[::2], "weights.r_scale: expected a C-contiguous"),
        ("linear_before_reset", 2, "weights.linear_before_reset"),
        ("rh", None, "weights.rh: expected PackedDynamicWeights"),
    ],
)
def test_gru_weights_with_bad_fields_are_refused(field, value, match) -> None:
    w, ws, r, rs, wb, rb = _rnn_weights(3)
    good = pack_gru_weights(w, ws, r, rs, wb, rb)
    with pytest.raises(KernelError, match=match):
        gru(np.zeros((2, 1, 4), F32), dataclasses.replace(good, **{field: value}))


def test_gru_rh_swapped_for_rzr_is_refused() -> None:
    w, ws, r, rs, wb, rb = _rnn_weights(3)
    good = pack_gru_weights(w, ws, r, rs, wb, rb)
    with pytest.raises(KernelError, match=r"weights.rh: packed weights are K=3 x N=6, expected K=3 x N=3"):
        gru(np.zeros((2, 1, 4), F32), dataclasses.replace(good, rh=good.rzr))


def test_rnn_pack_refuses_float64_biases_instead_of_converting() -> None:
    w, ws, r, rs, wb, rb = _rnn_weights(4)
    with pytest.raises(KernelError, match="w_bias: expected dtype float32, got float64"):
        pack_lstm_weights(w, ws, r, rs, wb.astype(np.float64), rb)
    with pytest.raises(KernelError, match="h0: expected dtype float32, got float64"):
        lstm(np.zeros((1, 1, 4), F32), pack_lstm_weights(w, ws, r, rs), h0=np.zeros((1, 3)))


def test_rnn_non_contiguous_inputs_give_the_reference() -> None:
    w, ws, r, rs, wb, rb = _rnn_weights(4)
    rng = np.random.default_rng(5)
    xs = rng.standard_normal((3, 2, 8)).astype(F32)[:, :, ::2]  # non-contiguous view
    h0 = rng.standard_normal((3, 2)).astype(F32).T  # non-contiguous (transposed)
    c0 = np.zeros((2, 3), F32)
    y, _, _ = lstm(xs, pack_lstm_weights(w, ws, r, rs, wb, rb), h0, c0)
    assert_same_bits(y, ref_rnn.lstm_sequence(np.ascontiguousarray(xs), h0, c0, w, ws, r, rs, wb, rb)[0])


def test_rnn_c_checks_bias_lengths_when_python_is_bypassed() -> None:
    w, ws, r, rs, wb, rb = _rnn_weights(4)
    packed = pack_lstm_weights(w, ws, r, rs, wb, rb)
    short = np.ones(2, F32)
    p = ffi.new("onnxq_lstm_params*")
    p.batch, p.input_size, p.hidden, p.mode = 1, 4, 3, 0
    p.w_packed, p.w_packed_size = packed.w.packed.pointer(), packed.w.packed.buffer.size
    p.r_packed, p.r_packed_size = packed.r.packed.pointer(), packed.r.packed.buffer.size
    p.w_scale, p.w_scale_len = ffi.from_buffer("float[]", ws), 12
    p.r_scale, p.r_scale_len = ffi.from_buffer("float[]", rs), 12
    p.w_bias, p.w_bias_len = ffi.from_buffer("float[]", short), 2
    x, y = np.zeros(4, F32), np.full(3, 7, F32)
    st = lib.onnxq_lstm(
        p,
        1,
        ffi.from_buffer("float[]", x),
        4,
        ffi.NULL,
        0,
        ffi.NULL,
        0,
        ffi.from_buffer("float[]", y),
        3,
        ffi.NULL,
        0,
        ffi.NULL,
        0,
    )
    assert st == lib.ONNXQ_E_SHAPE
    assert "w_bias has 2 values, expected 12" in ffi.string(lib.onnxq_last_error()).decode()
    assert np.all(y == 7)


# ---------------------------------------------------------------------------------------------
# 4. dynamic quantization: NaN is refused like Inf, native and reference (see test_dynamic.py)


def test_dynamic_nan_is_refused_like_inf_by_native_and_reference() -> None:
    a = np.array([[1.0, np.nan, -2.0]], F32)
    for fn in (dynamic_quantize, ref_dynamic.dynamic_quantize):
        with pytest.raises(KernelError, match="NaN or infinity"):
            fn(a)
    packed = pack_dynamic_weights(np.ones((2, 3), np.int8), 0.1)
    with pytest.raises(KernelError, match="NaN or infinity"):
        dynamic_matmul(a, packed, per_row=True)
    with pytest.raises(KernelError, match="bias: expected dtype float32, got float64"):
        dynamic_matmul(np.ones((1, 3), F32), packed, bias=np.zeros(2))


# ---------------------------------------------------------------------------------------------
# 5. threads: bounded, and the pool does not leak OS threads

_THREAD_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from onnxq.errors import KernelError
    from onnxq.kernels import conv_u8s8_nhwc, pack_conv_weights
    from onnxq.kernels.conv import MAX_THREADS, release_threads, threads_alive

    def tasks():
        return len(os.listdir("/proc/self/task"))

    if sys.argv[1] == "one-cpu":
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    cpus = len(os.sched_getaffinity(0))
    x = np.zeros((1, 64, 64, 64), np.uint8)
    packed = pack_conv_weights(np.ones((64, 64, 3, 3), np.int8), None, 0.01)  # 150M MACs
    before = tasks()
    refused = 0
    for threads in (5000, 2**40, MAX_THREADS + 1):
        try:
            conv_u8s8_nhwc(x, 0, packed, 0, threads=threads, pads=(1, 1, 1, 1))
        except KernelError:
            refused += 1
    after_refused = tasks()
    for _ in range(3):
        for threads in (MAX_THREADS, 2, 3, MAX_THREADS):
            conv_u8s8_nhwc(x, 0, packed, 0, threads=threads, pads=(1, 1, 1, 1))
    peak = tasks()
    alive = threads_alive()
    stopped = release_threads()
    print(cpus, before, refused, after_refused, peak, alive, stopped, tasks(), threads_alive())
    """
)


@pytest.mark.parametrize("affinity", ["all-cpus", "one-cpu"])
def test_thread_count_is_bounded_and_the_pool_does_not_leak(affinity) -> None:
    if affinity == "one-cpu" and not hasattr(os, "sched_setaffinity"):
        pytest.skip("no sched_setaffinity")
    out = subprocess.run(
        [sys.executable, "-c", _THREAD_SCRIPT, affinity], capture_output=True, text=True, check=True
    ).stdout.split()
    cpus, before, refused, after_refused, peak, alive, stopped, after, alive_after = map(int, out)
    assert refused == 3  # threads > MAX_THREADS: KernelError, no thread started
    assert after_refused == before
    bound = min(cpus, MAX_THREADS) - 1  # never more workers than the CPUs we may run on
    assert alive <= bound
    assert peak - before <= bound  # repeated calls reuse the pool
    if affinity == "one-cpu":
        assert alive == 0
    assert stopped == alive
    assert after == before and alive_after == 0  # released: back to the threads we started with


def test_threads_argument_is_validated() -> None:
    x, packed = _conv_case(1)
    for bad, match in (
        (-1, "threads: -1 is outside"),
        (MAX_THREADS + 1, "threads"),
        (2.5, "threads"),
        ("2", "threads"),
        (2**70, "threads"),
    ):
        with pytest.raises(KernelError, match=match):
            conv_u8s8_nhwc(x, 3, packed, 5, threads=bad)
    release_threads()
    assert threads_alive() == 0


# ---------------------------------------------------------------------------------------------
# 6. every array argument: dtype, contiguity, length; huge integers never overflow into C


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: quantize(np.zeros(4, np.float64), 0.1, 0), "x: expected dtype float32"),
        (lambda: quantize(np.zeros(4, F32), 0.1, 2**40), "zero_point: values must fit in int32"),
        (lambda: quantize(np.zeros(4, F32), 0.1, 1.5), "zero_point: expected integers"),
        (lambda: quantize(np.zeros(4, F32), "a", 0), "scale: expected real numbers"),
        (lambda: quantize(np.zeros(4, F32), 0.1, 0, axis=2**70), "axis"),
        (lambda: dequantize(np.zeros(4, np.int16), 0.1, 0), "q: wrong dtype"),
        (
            lambda: gemm_u8s8(np.zeros((2, 4), np.uint8), _gemm_packed(), scale=0.1, a_zero_point=2**40),
            "a_zero_point",
        ),
        (lambda: gemm_u8s8(np.zeros((2, 4), np.uint8), _gemm_packed(), out_dtype="nonsense"), "out_dtype"),
        (
            lambda: gemm_u8s8(
                np.zeros((2, 4), np.uint8),
                _gemm_packed(),
                out_dtype=np.int32,
                bias=np.zeros(6, np.int32)[::2],
            ),
            None,
        ),
        (
            lambda: conv_u8s8_nhwc(
                np.zeros((1, 6, 6, 8), np.uint8), 0, _conv_case(1)[1], 0, pads=(2**70, 0, 0, 0)
            ),
            "pads",
        ),
        (
            lambda: conv_u8s8_nhwc(
                np.zeros((1, 6, 6, 8), np.uint8),
                0,
                _conv_case(1)[1],
                0,
                out=np.zeros((1, 4, 8, 8), np.uint8)[:, :, ::2],
            ),
            "out: expected",
        ),
        (lambda: conv_u8s8_nhwc(np.zeros((1, 6, 6, 8), np.float32), 0, _conv_case(1)[1], 0), "x"),
        (lambda: pack_conv_weights(np.zeros((2, 2, 1, 1), np.int8), None, [[0.1]]), "scale"),
        (
            lambda: qadd(np.zeros(4, np.uint8), 0.1, 2**40, np.zeros(4, np.uint8), 0.1, 0, 0.1, 0),
            "a_zero_point",
        ),
        (lambda: qadd(np.zeros(4, np.uint8), "x", 0, np.zeros(4, np.uint8), 0.1, 0, 0.1, 0), "a_scale"),
        (lambda: maxpool(np.zeros((1, 3, 3, 2), np.uint8), (1, 1), pads=(2**64, 0, 0, 0)), "pads"),
        (lambda: avgpool(np.zeros((1, 3, 3, 2), np.uint8), 0.1, 2**33, 0.1, 0, (1, 1)), "x_zero_point"),
        (lambda: global_avgpool(np.zeros((1, 3, 3, 2), np.uint8), [0.1, 0.2], 0, 0.1, 0), "x_scale"),
        (lambda: qconcat([np.zeros(3, np.uint8)], [0.1], [2**40], 0.1, 0, 0), r"zero_points\[0\]"),
        (lambda: qconcat([np.zeros(3, np.uint8)], [0.1], [0], 0.1, 0, axis=1.5), "axis"),
        (lambda: dynamic_quantize(np.zeros((2, 2), np.float16)), "a: expected a 2-D float32"),
        (lambda: lstm(np.zeros((1, 1, 4), F32), "weights"), "weights: expected LstmWeights"),
        (lambda: gru(np.zeros((1, 1, 4), F32), None), "weights: expected GruWeights"),
    ],
)
def test_wrong_arguments_give_kernel_error_naming_them(call, match) -> None:
    if match is None:  # accepted: a non-contiguous input is copied, the result is right
        assert call().shape == (2, 3)
        return
    with pytest.raises(KernelError, match=match):
        call()


def test_non_contiguous_inputs_are_copied_and_give_the_same_bytes() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (4, 6), dtype=np.uint8)
    b = rng.integers(0, 256, (4, 6), dtype=np.uint8)
    np.testing.assert_array_equal(
        qadd(a[:, ::2], 0.1, 3, b[:, ::2], 0.2, 4, 0.3, 5),
        qadd(a[:, ::2].copy(), 0.1, 3, b[:, ::2].copy(), 0.2, 4, 0.3, 5),
    )
    x = rng.integers(0, 256, (1, 6, 12, 3), dtype=np.uint8)
    np.testing.assert_array_equal(maxpool(x[:, :, ::2], (2, 2)), maxpool(x[:, :, ::2].copy(), (2, 2)))
    f = rng.standard_normal((8, 6)).astype(F32)
    for got, want in zip(dynamic_quantize(f.T), dynamic_quantize(f.T.copy()), strict=True):
        np.testing.assert_array_equal(got, want)
    _, packed = _conv_case(1)
    xc = rng.integers(0, 256, (1, 6, 6, 16), dtype=np.uint8)
    np.testing.assert_array_equal(
        conv_u8s8_nhwc(xc[..., ::2], 3, packed, 5), conv_u8s8_nhwc(xc[..., ::2].copy(), 3, packed, 5)
    )


def test_c_checks_every_length_when_python_is_bypassed() -> None:
    x, y = np.zeros(4, F32), np.full(4, 9, np.uint8)
    scale, zp = np.ones(1, F32), np.zeros(1, np.int32)
    p = ffi.new("onnxq_quant_params*")
    p.outer, p.channels, p.inner, p.qtype = 1, 1, 4, lib.ONNXQ_U8
    p.scale, p.scale_len = ffi.from_buffer("float[]", scale), 1
    p.zp, p.zp_len = ffi.from_buffer("int32_t[]", zp), 1
    for x_len, y_len in ((3, 4), (4, 3), (5, 4)):
        assert lib.onnxq_quantize(p, ffi.from_buffer("float[]", x), x_len, ffi.from_buffer(y), y_len) == (
            lib.ONNXQ_E_SHAPE
        )
    p.scale_len = 2
    assert lib.onnxq_quantize(p, ffi.from_buffer("float[]", x), 4, ffi.from_buffer(y), 4) == lib.ONNXQ_E_SHAPE
    assert np.all(y == 9)
    q, s, z = np.zeros(4, np.uint8), np.zeros(2, F32), np.zeros(2, np.int32)
    st = lib.onnxq_dynamic_quantize(
        ffi.from_buffer("float[]", x),
        3,
        2,
        2,
        2,
        1,
        ffi.from_buffer(q),
        4,
        ffi.from_buffer("float[]", s),
        ffi.from_buffer("int32_t[]", z),
        2,
    )
    assert st == lib.ONNXQ_E_SHAPE  # x_len 3 < 4


def test_packed_dynamic_weights_fields_are_checked() -> None:
    good = pack_dynamic_weights(np.ones((3, 4), np.int8), 0.1)
    a = np.ones((2, 4), F32)
    with pytest.raises(KernelError, match=r"weights.w_scale: expected 1 or 3 values, got 2"):
        dynamic_matmul(a, dataclasses.replace(good, w_scale=np.ones(2, F32)))
    with pytest.raises(KernelError, match=r"weights.w_scale: expected dtype float32"):
        dynamic_matmul(a, dataclasses.replace(good, w_scale=np.ones(3)))
    with pytest.raises(KernelError, match=r"weights.packed: expected PackedGemmWeights"):
        dynamic_matmul(a, dataclasses.replace(good, packed=np.zeros(8, np.uint8)))


def test_lstm_and_gru_dataclasses_constructed_by_hand_work_when_consistent() -> None:
    w, ws, r, rs, wb, rb = _rnn_weights(4)
    packed = pack_lstm_weights(w, ws, r, rs, wb, rb)
    by_hand = LstmWeights(3, packed.w, packed.r, wb.copy(), rb.copy())
    x = np.random.default_rng(1).standard_normal((2, 1, 4)).astype(F32)
    assert_same_bits(lstm(x, by_hand)[0], lstm(x, packed)[0])
    w, ws, r, rs, wb, rb = _rnn_weights(3)
    g = pack_gru_weights(w, ws, r, rs, wb, rb)
    by_hand_gru = GruWeights(3, False, g.w, g.rzr, g.rh, g.r_scale.copy(), None, None)
    assert gru(x, by_hand_gru)[0].shape == (2, 1, 3)


def _misaligned(arr: np.ndarray) -> np.ndarray:
    raw = np.zeros(arr.nbytes + 1, np.uint8)
    raw[1:] = np.frombuffer(arr.tobytes(), np.uint8)
    out = np.frombuffer(raw.data, arr.dtype, arr.size, 1).reshape(arr.shape)
    assert not out.flags.aligned
    return out


def test_misaligned_inputs_are_copied_and_misaligned_fields_refused() -> None:
    rng = np.random.default_rng(11)
    x = rng.standard_normal((5, 7)).astype(F32)
    np.testing.assert_array_equal(quantize(_misaligned(x), 0.05, 3), quantize(x, 0.05, 3))
    for got, want in zip(dynamic_quantize(_misaligned(x)), dynamic_quantize(x), strict=True):
        np.testing.assert_array_equal(got, want)
    good = pack_dynamic_weights(np.ones((3, 7), np.int8), 0.1)
    with pytest.raises(KernelError, match=r"weights.w_scale: expected an array aligned"):
        dynamic_matmul(x, dataclasses.replace(good, w_scale=_misaligned(good.w_scale)))
