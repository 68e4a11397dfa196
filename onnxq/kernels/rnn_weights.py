"""Packed weights of LSTM, GRU and RNN (one direction) for :mod:`onnxq.kernels.rnn`.

Weights follow ONNX: ``W[gates*H, I]``, ``R[gates*H, H]`` in gate order LSTM ``i, o, f, c`` /
GRU ``z, r, h`` / RNN one gate, quantized s8 per output row with fp32 scales; biases ``Wb``,
``Rb`` fp32 ``[gates*H]``. Each is packed once for the dynamic-quantization matmul and checked
against the others (:meth:`LstmWeights.validated`) before every run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxq.errors import KernelError
from onnxq.kernels._ffi import SIZE_MAX, require_array, require_buffer, require_int, require_scales, show
from onnxq.kernels.dynamic import PackedDynamicWeights, pack_dynamic_weights

__all__ = [
    "GruWeights",
    "LstmWeights",
    "RnnWeights",
    "pack_gru_weights",
    "pack_lstm_weights",
    "pack_rnn_weights",
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
