"""LSTM and GRU on the dynamic-quantization matmul (native sequence drivers).

Weights follow ONNX (one direction): ``W[gates*H, I]``, ``R[gates*H, H]`` in gate order LSTM
``i, o, f, c`` / GRU ``z, r, h``, quantized s8 per output row with fp32 scales; biases ``Wb``, ``Rb``
fp32 ``[gates*H]``. See :mod:`onnxq.kernels.reference.rnn` for the exact arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxq.errors import KernelError
from onnxq.kernels._ffi import check, ffi, lib
from onnxq.kernels.dynamic import PackedDynamicWeights, pack_dynamic_weights

__all__ = ["GruWeights", "LstmWeights", "gru", "lstm", "pack_gru_weights", "pack_lstm_weights"]


@dataclass(frozen=True, eq=False)
class LstmWeights:
    """Packed LSTM weights of one direction."""

    hidden: int
    w: PackedDynamicWeights
    r: PackedDynamicWeights
    w_bias: np.ndarray | None
    r_bias: np.ndarray | None


@dataclass(frozen=True, eq=False)
class GruWeights:
    """Packed GRU weights of one direction (R split into its z/r rows and its h rows)."""

    hidden: int
    linear_before_reset: bool
    w: PackedDynamicWeights
    rzr: PackedDynamicWeights
    rh: PackedDynamicWeights
    r_scale: np.ndarray
    w_bias: np.ndarray | None
    r_bias: np.ndarray | None


def _rows_scale(scale: np.ndarray | float, rows: int, name: str) -> np.ndarray:
    s = np.asarray(scale, dtype=np.float32).reshape(-1)
    if s.size == 1:
        s = np.full(rows, s[0], dtype=np.float32)
    if s.size != rows:
        raise KernelError(f"{name}: expected 1 or {rows} values, got {s.size}")
    return np.ascontiguousarray(s)


def _bias(value: np.ndarray | None, rows: int, name: str) -> np.ndarray | None:
    if value is None:
        return None
    b = np.ascontiguousarray(np.asarray(value, dtype=np.float32).reshape(-1))
    if b.size != rows:
        raise KernelError(f"{name}: expected {rows} values, got {b.size}")
    return b


def _weights(w: np.ndarray, r: np.ndarray, gates: int, name: str) -> tuple[np.ndarray, np.ndarray,
                                                                            int]:
    w = np.asarray(w)
    r = np.asarray(r)
    if w.dtype != np.int8 or r.dtype != np.int8 or w.ndim != 2 or r.ndim != 2:
        raise KernelError(f"{name}: W and R must be 2-D int8 arrays, got {w.dtype}{w.shape} and "
                          f"{r.dtype}{r.shape}")
    rows = w.shape[0]
    if rows == 0 or rows % gates:
        raise KernelError(f"{name}: W has {rows} rows, expected {gates} * hidden")
    hidden = rows // gates
    if r.shape != (rows, hidden):
        raise KernelError(f"{name}: R has shape {r.shape}, expected {(rows, hidden)}")
    return w, r, hidden


def pack_lstm_weights(w: np.ndarray, w_scale: np.ndarray | float, r: np.ndarray,
                      r_scale: np.ndarray | float, w_bias: np.ndarray | None = None,
                      r_bias: np.ndarray | None = None) -> LstmWeights:
    """Pack s8 ``W[4H, I]`` and ``R[4H, H]`` with their per-row scales and optional biases."""
    w, r, hidden = _weights(w, r, 4, "lstm")
    rows = 4 * hidden
    return LstmWeights(hidden, pack_dynamic_weights(w, _rows_scale(w_scale, rows, "w_scale")),
                       pack_dynamic_weights(r, _rows_scale(r_scale, rows, "r_scale")),
                       _bias(w_bias, rows, "w_bias"), _bias(r_bias, rows, "r_bias"))


def pack_gru_weights(w: np.ndarray, w_scale: np.ndarray | float, r: np.ndarray,
                     r_scale: np.ndarray | float, w_bias: np.ndarray | None = None,
                     r_bias: np.ndarray | None = None, *,
                     linear_before_reset: bool = False) -> GruWeights:
    """Pack s8 ``W[3H, I]`` and ``R[3H, H]`` with their per-row scales and optional biases."""
    w, r, hidden = _weights(w, r, 3, "gru")
    rows = 3 * hidden
    rs = _rows_scale(r_scale, rows, "r_scale")
    return GruWeights(hidden, bool(linear_before_reset),
                      pack_dynamic_weights(w, _rows_scale(w_scale, rows, "w_scale")),
                      pack_dynamic_weights(r[: 2 * hidden], rs[: 2 * hidden]),
                      pack_dynamic_weights(r[2 * hidden:], rs[2 * hidden:]), rs,
                      _bias(w_bias, rows, "w_bias"), _bias(r_bias, rows, "r_bias"))


def _sequence(xs: np.ndarray, input_size: int, name: str) -> np.ndarray:
    x = np.asarray(xs)
    if x.dtype != np.float32 or x.ndim != 3:
        raise KernelError(f"{name}: expected float32 [seq_len, batch, input], got {x.dtype}{x.shape}")
    if x.size == 0:
        raise KernelError(f"{name}: zero-size sequence of shape {x.shape}")
    if x.shape[2] != input_size:
        raise KernelError(f"{name}: input size {x.shape[2]}, the weights expect {input_size}")
    return np.ascontiguousarray(x)


def _state(value: np.ndarray | None, shape: tuple[int, int], name: str) -> np.ndarray | None:
    if value is None:
        return None
    s = np.ascontiguousarray(np.asarray(value, dtype=np.float32))
    if s.shape != shape:
        raise KernelError(f"{name}: expected shape {shape}, got {s.shape}")
    return s


def _ptr(arr: np.ndarray | None, writable: bool = False) -> object:
    if arr is None:
        return ffi.NULL
    return ffi.from_buffer("float[]", arr, require_writable=writable)


def lstm(xs: np.ndarray, weights: LstmWeights, h0: np.ndarray | None = None,
         c0: np.ndarray | None = None, *, per_row: bool = False, reverse: bool = False
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run an LSTM over ``xs[T, B, I]`` → ``(y[T, B, H], h_T[B, H], c_T[B, H])``; ``reverse``
    runs from the last step to the first (ONNX direction "reverse"; y stays in input order)."""
    x = _sequence(xs, weights.w.k, "xs")
    if reverse:
        x = np.ascontiguousarray(x[::-1])
    seq, batch, _ = x.shape
    hidden = weights.hidden
    h0a = _state(h0, (batch, hidden), "h0")
    c0a = _state(c0, (batch, hidden), "c0")
    p = ffi.new("onnxq_lstm_params*")
    p.batch, p.input_size, p.hidden = batch, x.shape[2], hidden
    p.mode = lib.ONNXQ_DQ_PER_ROW if per_row else lib.ONNXQ_DQ_PER_TENSOR
    p.w_packed, p.w_packed_size = weights.w.packed.pointer(), weights.w.packed.buffer.size
    p.w_scale = _ptr(weights.w.w_scale)
    p.r_packed, p.r_packed_size = weights.r.packed.pointer(), weights.r.packed.buffer.size
    p.r_scale = _ptr(weights.r.w_scale)
    p.w_bias, p.r_bias = _ptr(weights.w_bias), _ptr(weights.r_bias)
    y = np.empty((seq, batch, hidden), dtype=np.float32)
    h = np.empty((batch, hidden), dtype=np.float32)
    c = np.empty((batch, hidden), dtype=np.float32)
    check(lib.onnxq_lstm(p, seq, _ptr(x), _ptr(h0a), _ptr(c0a), _ptr(y, True), _ptr(h, True),
                         _ptr(c, True)))
    return (np.ascontiguousarray(y[::-1]) if reverse else y), h, c


def gru(xs: np.ndarray, weights: GruWeights, h0: np.ndarray | None = None, *,
        per_row: bool = False, reverse: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Run a GRU over ``xs[T, B, I]`` → ``(y[T, B, H], h_T[B, H])``; ``reverse`` as in
    :func:`lstm`."""
    x = _sequence(xs, weights.w.k, "xs")
    if reverse:
        x = np.ascontiguousarray(x[::-1])
    seq, batch, _ = x.shape
    hidden = weights.hidden
    h0a = _state(h0, (batch, hidden), "h0")
    p = ffi.new("onnxq_gru_params*")
    p.batch, p.input_size, p.hidden = batch, x.shape[2], hidden
    p.mode = lib.ONNXQ_DQ_PER_ROW if per_row else lib.ONNXQ_DQ_PER_TENSOR
    p.linear_before_reset = int(weights.linear_before_reset)
    p.w_packed, p.w_packed_size = weights.w.packed.pointer(), weights.w.packed.buffer.size
    p.w_scale = _ptr(weights.w.w_scale)
    p.rzr_packed, p.rzr_packed_size = weights.rzr.packed.pointer(), weights.rzr.packed.buffer.size
    p.rh_packed, p.rh_packed_size = weights.rh.packed.pointer(), weights.rh.packed.buffer.size
    p.r_scale = _ptr(weights.r_scale)
    p.w_bias, p.r_bias = _ptr(weights.w_bias), _ptr(weights.r_bias)
    y = np.empty((seq, batch, hidden), dtype=np.float32)
    h = np.empty((batch, hidden), dtype=np.float32)
    check(lib.onnxq_gru(p, seq, _ptr(x), _ptr(h0a), _ptr(y, True), _ptr(h, True)))
    return (np.ascontiguousarray(y[::-1]) if reverse else y), h
