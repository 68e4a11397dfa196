"""LSTM, GRU and RNN on the dynamic-quantization matmul (native sequence drivers).

Weights follow ONNX (one direction): ``W[gates*H, I]``, ``R[gates*H, H]`` in gate order LSTM
``i, o, f, c`` / GRU ``z, r, h`` / RNN one gate, quantized s8 per output row with fp32 scales;
biases ``Wb``, ``Rb`` fp32 ``[gates*H]``. See :mod:`onnxq.kernels.reference.rnn` for the exact arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxq.errors import KernelError
from onnxq.kernels._ffi import (
    SIZE_MAX,
    byte_ptr,
    check,
    ffi,
    in_ptr,
    lib,
    new_array,
    out_ptr,
    require_array,
    require_buffer,
    require_int,
    require_scales,
    show,
)
from onnxq.kernels.dynamic import PackedDynamicWeights, pack_dynamic_weights

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


def _packed(value: object, name: str, k: int | None, n: int) -> tuple[int, np.ndarray]:
    """(k, buffer) of packed dynamic weights with n output rows (and k inputs when given)."""
    if not isinstance(value, PackedDynamicWeights):
        raise KernelError(f"{name}: expected PackedDynamicWeights, got {type(value).__name__}")
    got_k, got_n, buf, _ = value.validated(name)
    if got_n != n or (k is not None and got_k != k):
        want = f"K={k} x N={n}" if k is not None else f"N={n}"
        raise KernelError(f"{name}: packed weights are K={got_k} x N={got_n}, expected {want}")
    return got_k, buf


def _bias_buffer(value: np.ndarray | None, name: str, rows: int) -> np.ndarray | None:
    if value is None:
        return None
    return require_buffer(value, name, np.float32, ndim=1, size=rows)


@dataclass(frozen=True, eq=False)
class LstmWeights:
    """Packed LSTM weights of one direction (build with :func:`pack_lstm_weights`; every field is
    checked against the others by :meth:`validated` before each run)."""

    hidden: int
    w: PackedDynamicWeights
    r: PackedDynamicWeights
    w_bias: np.ndarray | None
    r_bias: np.ndarray | None

    GATES = 4

    def validated(self, name: str = "weights") -> dict[str, object]:
        """The arrays C reads, after checking them: ``w`` packed as K=I x N=4H, ``r`` as H x 4H,
        their scales float32 [4H], the biases None or C-contiguous float32 [4H] (RNN: H rows)."""
        hidden = require_int(self.hidden, f"{name}.hidden", 1, SIZE_MAX // 16)
        rows = self.GATES * hidden
        inp, w_buf = _packed(self.w, f"{name}.w", None, rows)
        _, r_buf = _packed(self.r, f"{name}.r", hidden, rows)
        return {
            "hidden": hidden,
            "input": inp,
            "w": w_buf,
            "r": r_buf,
            "w_scale": require_buffer(self.w.w_scale, f"{name}.w.w_scale", np.float32, ndim=1, size=rows),
            "r_scale": require_buffer(self.r.w_scale, f"{name}.r.w_scale", np.float32, ndim=1, size=rows),
            "w_bias": _bias_buffer(self.w_bias, f"{name}.w_bias", rows),
            "r_bias": _bias_buffer(self.r_bias, f"{name}.r_bias", rows),
        }


class RnnWeights(LstmWeights):
    """Packed plain-RNN weights of one direction (build with :func:`pack_rnn_weights`): one gate."""

    GATES = 1


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

    def validated(self, name: str = "weights") -> dict[str, object]:
        """The arrays C reads, after checking them: ``w`` packed as K=I x N=3H, ``rzr`` as H x 2H,
        ``rh`` as H x H, ``r_scale`` float32 [3H], the biases None or C-contiguous float32 [3H]."""
        hidden = require_int(self.hidden, f"{name}.hidden", 1, SIZE_MAX // 16)
        rows = 3 * hidden
        if not isinstance(self.linear_before_reset, (bool, np.bool_, int, np.integer)) or int(
            self.linear_before_reset
        ) not in (0, 1):
            shown = show(self.linear_before_reset)
            raise KernelError(f"{name}.linear_before_reset: expected a bool, got {shown}")
        inp, w_buf = _packed(self.w, f"{name}.w", None, rows)
        _, rzr_buf = _packed(self.rzr, f"{name}.rzr", hidden, 2 * hidden)
        _, rh_buf = _packed(self.rh, f"{name}.rh", hidden, hidden)
        return {
            "hidden": hidden,
            "input": inp,
            "linear_before_reset": int(self.linear_before_reset),
            "w": w_buf,
            "rzr": rzr_buf,
            "rh": rh_buf,
            "w_scale": require_buffer(self.w.w_scale, f"{name}.w.w_scale", np.float32, ndim=1, size=rows),
            "r_scale": require_buffer(self.r_scale, f"{name}.r_scale", np.float32, ndim=1, size=rows),
            "w_bias": _bias_buffer(self.w_bias, f"{name}.w_bias", rows),
            "r_bias": _bias_buffer(self.r_bias, f"{name}.r_bias", rows),
        }


def _rows_scale(scale: np.ndarray | float, rows: int, name: str) -> np.ndarray:
    s = require_scales(scale, name, flatten=True)
    if s.size == 1:
        s = np.full(rows, s[0], dtype=np.float32)
    if s.size != rows:
        raise KernelError(f"{name}: expected 1 or {rows} values, got {s.size}")
    return s


def _bias(value: np.ndarray | None, rows: int, name: str) -> np.ndarray | None:
    if value is None:
        return None
    b = require_array(value, name, np.float32, ndim=1)
    if b.size != rows:
        raise KernelError(f"{name}: expected {rows} values, got {b.size}")
    return b


def _weights(w: np.ndarray, r: np.ndarray, gates: int, name: str) -> tuple[np.ndarray, np.ndarray, int]:
    w = np.asarray(w)
    r = np.asarray(r)
    if w.dtype != np.int8 or r.dtype != np.int8 or w.ndim != 2 or r.ndim != 2:
        raise KernelError(
            f"{name}: W and R must be 2-D int8 arrays, got {w.dtype}{w.shape} and {r.dtype}{r.shape}"
        )
    rows = w.shape[0]
    if rows == 0 or rows % gates:
        raise KernelError(f"{name}: W has {rows} rows, expected {gates} * hidden")
    hidden = rows // gates
    if r.shape != (rows, hidden):
        raise KernelError(f"{name}: R has shape {r.shape}, expected {(rows, hidden)}")
    return w, r, hidden


def pack_lstm_weights(
    w: np.ndarray,
    w_scale: np.ndarray | float,
    r: np.ndarray,
    r_scale: np.ndarray | float,
    w_bias: np.ndarray | None = None,
    r_bias: np.ndarray | None = None,
) -> LstmWeights:
    """Pack s8 ``W[4H, I]`` and ``R[4H, H]`` with their per-row scales and optional biases."""
    return _pack_single(LstmWeights, w, w_scale, r, r_scale, w_bias, r_bias)


def pack_rnn_weights(
    w: np.ndarray,
    w_scale: np.ndarray | float,
    r: np.ndarray,
    r_scale: np.ndarray | float,
    w_bias: np.ndarray | None = None,
    r_bias: np.ndarray | None = None,
) -> RnnWeights:
    """Pack s8 ``W[H, I]`` and ``R[H, H]`` of a plain RNN with per-row scales and optional biases."""
    return _pack_single(RnnWeights, w, w_scale, r, r_scale, w_bias, r_bias)  # type: ignore[return-value]


def _pack_single(
    cls: type[LstmWeights],
    w: np.ndarray,
    w_scale: np.ndarray | float,
    r: np.ndarray,
    r_scale: np.ndarray | float,
    w_bias: np.ndarray | None,
    r_bias: np.ndarray | None,
) -> LstmWeights:
    w, r, hidden = _weights(w, r, cls.GATES, "lstm" if cls.GATES == 4 else "rnn")
    rows = cls.GATES * hidden
    return cls(
        hidden,
        pack_dynamic_weights(w, _rows_scale(w_scale, rows, "w_scale")),
        pack_dynamic_weights(r, _rows_scale(r_scale, rows, "r_scale")),
        _bias(w_bias, rows, "w_bias"),
        _bias(r_bias, rows, "r_bias"),
    )


def pack_gru_weights(
    w: np.ndarray,
    w_scale: np.ndarray | float,
    r: np.ndarray,
    r_scale: np.ndarray | float,
    w_bias: np.ndarray | None = None,
    r_bias: np.ndarray | None = None,
    *,
    linear_before_reset: bool = False,
) -> GruWeights:
    """Pack s8 ``W[3H, I]`` and ``R[3H, H]`` with their per-row scales and optional biases."""
    w, r, hidden = _weights(w, r, 3, "gru")
    rows = 3 * hidden
    rs = _rows_scale(r_scale, rows, "r_scale")
    return GruWeights(
        hidden,
        bool(linear_before_reset),
        pack_dynamic_weights(w, _rows_scale(w_scale, rows, "w_scale")),
        pack_dynamic_weights(r[: 2 * hidden], rs[: 2 * hidden]),
        pack_dynamic_weights(r[2 * hidden :], rs[2 * hidden :]),
        rs,
        _bias(w_bias, rows, "w_bias"),
        _bias(r_bias, rows, "r_bias"),
    )


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
