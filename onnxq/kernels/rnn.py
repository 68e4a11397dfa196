"""LSTM, GRU and RNN on the dynamic-quantization matmul (native sequence drivers).

Weights follow ONNX (one direction): ``W[gates*H, I]``, ``R[gates*H, H]`` in gate order LSTM
``i, o, f, c`` / GRU ``z, r, h`` / RNN one gate, quantized s8 per output row with fp32 scales;
biases ``Wb``, ``Rb`` fp32 ``[gates*H]``. See :mod:`onnxq.kernels.reference.rnn` for the exact arithmetic.
"""

from __future__ import annotations

import numpy as np

from onnxq.errors import KernelError
from onnxq.kernels._ffi import (
    byte_ptr,
    check,
    ffi,
    in_ptr,
    lib,
    new_array,
    out_ptr,
    require_array,
)
from onnxq.kernels.rnn_weights import (
    GruWeights,
    LstmWeights,
    RnnWeights,
    pack_gru_weights,
    pack_lstm_weights,
    pack_rnn_weights,
)

__all__ = [
    "GruWeights",
    "LstmWeights",
    "RnnWeights",
    "gru",
    "lstm",
    "pack_gru_weights",
    "pack_lstm_weights",
    "pack_rnn_weights",
    "rnn",
]


def _sequence(xs: np.ndarray, input_size: int, name: str) -> np.ndarray:
    x = np.asarray(xs)
    if x.dtype != np.float32 or x.ndim != 3:
        raise KernelError(f"{name}: expected float32 [seq_len, batch, input], got {x.dtype}{x.shape}")
    if x.size == 0:
        raise KernelError(f"{name}: zero-size sequence of shape {x.shape}")
    if x.shape[2] != input_size:
        raise KernelError(f"{name}: input size {x.shape[2]}, the weights expect {input_size}")
    return require_array(x, name, np.float32, ndim=3)


def _state(value: np.ndarray | None, shape: tuple[int, int], name: str) -> np.ndarray | None:
    if value is None:
        return None
    s = np.asarray(value)
    if s.shape != shape:
        raise KernelError(f"{name}: expected shape {shape}, got {s.shape}")
    return require_array(s, name, np.float32, shape=shape)


def _ptr(arr: np.ndarray | None, writable: bool = False) -> object:
    if arr is None:
        return ffi.NULL
    return out_ptr(arr) if writable else in_ptr(arr)


def _size(arr: np.ndarray | None) -> int:
    return 0 if arr is None else arr.size


def _mode(per_row: bool) -> int:
    return lib.ONNXQ_DQ_PER_ROW if per_row else lib.ONNXQ_DQ_PER_TENSOR


def lstm(
    xs: np.ndarray,
    weights: LstmWeights,
    h0: np.ndarray | None = None,
    c0: np.ndarray | None = None,
    *,
    per_row: bool = False,
    reverse: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run an LSTM over ``xs[T, B, I]`` → ``(y[T, B, H], h_T[B, H], c_T[B, H])``; ``reverse``
    runs from the last step to the first (ONNX direction "reverse"; y stays in input order).
    ``xs``, ``h0``, ``c0`` are float32 (finite); ``weights`` is checked field by field."""
    if not isinstance(weights, LstmWeights) or isinstance(weights, RnnWeights):
        raise KernelError(f"weights: expected LstmWeights, got {type(weights).__name__}")
    p, x, h0a, y, h = _single_run("onnxq_lstm_params*", weights, xs, h0, per_row, reverse)
    c0a = _state(c0, h.shape, "c0")
    c = np.empty(h.shape, dtype=np.float32)
    check(
        lib.onnxq_lstm(
            p,
            x.shape[0],
            _ptr(x),
            x.size,
            _ptr(h0a),
            _size(h0a),
            _ptr(c0a),
            _size(c0a),
            _ptr(y, True),
            y.size,
            _ptr(h, True),
            h.size,
            _ptr(c, True),
            c.size,
        )
    )
    return (np.ascontiguousarray(y[::-1]) if reverse else y), h, c


def _single_run(
    params: str, weights: LstmWeights, xs: np.ndarray, h0: np.ndarray | None, per_row: bool, reverse: bool
) -> tuple[object, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """The params struct of an LSTM / RNN run (one packed W and R) filled from ``weights``, the
    sequence (reversed when asked), h0 and the outputs ``y``, ``h`` to fill."""
    v = weights.validated()
    x = _sequence(xs, v["input"], "xs")  # type: ignore[arg-type]
    if reverse:
        x = np.ascontiguousarray(x[::-1])
    seq, batch, _ = x.shape
    hidden: int = v["hidden"]  # type: ignore[assignment]
    h0a = _state(h0, (batch, hidden), "h0")
    p = ffi.new(params)
    p.batch, p.input_size, p.hidden = batch, x.shape[2], hidden
    p.mode = _mode(per_row)
    w_buf, r_buf = v["w"], v["r"]
    p.w_packed, p.w_packed_size = ffi.cast("void*", byte_ptr(w_buf)), w_buf.size  # type: ignore[attr-defined]
    p.r_packed, p.r_packed_size = ffi.cast("void*", byte_ptr(r_buf)), r_buf.size  # type: ignore[attr-defined]
    p.w_scale, p.w_scale_len = _ptr(v["w_scale"]), _size(v["w_scale"])  # type: ignore[arg-type]
    p.r_scale, p.r_scale_len = _ptr(v["r_scale"]), _size(v["r_scale"])  # type: ignore[arg-type]
    p.w_bias, p.w_bias_len = _ptr(v["w_bias"]), _size(v["w_bias"])  # type: ignore[arg-type]
    p.r_bias, p.r_bias_len = _ptr(v["r_bias"]), _size(v["r_bias"])  # type: ignore[arg-type]
    y = new_array((seq, batch, hidden), np.float32, "y")
    return p, x, h0a, y, np.empty((batch, hidden), dtype=np.float32)


def gru(
    xs: np.ndarray,
    weights: GruWeights,
    h0: np.ndarray | None = None,
    *,
    per_row: bool = False,
    reverse: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Run a GRU over ``xs[T, B, I]`` → ``(y[T, B, H], h_T[B, H])``; ``reverse`` as in
    :func:`lstm`."""
    if not isinstance(weights, GruWeights):
        raise KernelError(f"weights: expected GruWeights, got {type(weights).__name__}")
    v = weights.validated()
    x = _sequence(xs, v["input"], "xs")  # type: ignore[arg-type]
    if reverse:
        x = np.ascontiguousarray(x[::-1])
    seq, batch, _ = x.shape
    hidden: int = v["hidden"]  # type: ignore[assignment]
    h0a = _state(h0, (batch, hidden), "h0")
    p = ffi.new("onnxq_gru_params*")
    p.batch, p.input_size, p.hidden = batch, x.shape[2], hidden
    p.mode = _mode(per_row)
    p.linear_before_reset = v["linear_before_reset"]
    w_buf, rzr_buf, rh_buf = v["w"], v["rzr"], v["rh"]
    p.w_packed, p.w_packed_size = ffi.cast("void*", byte_ptr(w_buf)), w_buf.size  # type: ignore[attr-defined]
    p.rzr_packed, p.rzr_packed_size = ffi.cast("void*", byte_ptr(rzr_buf)), rzr_buf.size  # type: ignore[attr-defined]
    p.rh_packed, p.rh_packed_size = ffi.cast("void*", byte_ptr(rh_buf)), rh_buf.size  # type: ignore[attr-defined]
    p.w_scale, p.w_scale_len = _ptr(v["w_scale"]), _size(v["w_scale"])  # type: ignore[arg-type]
    p.r_scale, p.r_scale_len = _ptr(v["r_scale"]), _size(v["r_scale"])  # type: ignore[arg-type]
    p.w_bias, p.w_bias_len = _ptr(v["w_bias"]), _size(v["w_bias"])  # type: ignore[arg-type]
    p.r_bias, p.r_bias_len = _ptr(v["r_bias"]), _size(v["r_bias"])  # type: ignore[arg-type]
    y = new_array((seq, batch, hidden), np.float32, "y")
    h = np.empty((batch, hidden), dtype=np.float32)
    check(
        lib.onnxq_gru(
            p, seq, _ptr(x), x.size, _ptr(h0a), _size(h0a), _ptr(y, True), y.size, _ptr(h, True), h.size
        )
    )
    return (np.ascontiguousarray(y[::-1]) if reverse else y), h


def rnn(
    xs: np.ndarray,
    weights: RnnWeights,
    h0: np.ndarray | None = None,
    *,
    per_row: bool = False,
    reverse: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Run a plain RNN (tanh) over ``xs[T, B, I]`` → ``(y[T, B, H], h_T[B, H])``; ``reverse`` as
    in :func:`lstm`."""
    if not isinstance(weights, RnnWeights):
        raise KernelError(f"weights: expected RnnWeights, got {type(weights).__name__}")
    p, x, h0a, y, h = _single_run("onnxq_rnn_params*", weights, xs, h0, per_row, reverse)
    check(
        lib.onnxq_rnn(
            p, x.shape[0], _ptr(x), x.size, _ptr(h0a), _size(h0a), _ptr(y, True), y.size,
            _ptr(h, True), h.size,
        )
    )
    return (np.ascontiguousarray(y[::-1]) if reverse else y), h
