"""Numpy reference of the dynamically quantized LSTM, GRU and RNN cells (twins of the native ones)
and of the ``ai.onnxq.DynamicLSTM`` / ``DynamicGRU`` / ``DynamicRNN`` ops built on them
(:func:`dynamic_rnn`).

Both matmuls of a cell (``X·Wᵀ`` and ``H·Rᵀ``) run through :func:`dynamic_matmul` (u8
activations quantized at run time, s8 weights per output channel, fp32 out); gates and states
stay fp32. ONNX gate order: LSTM ``i, o, f, c`` (rows of W/R in that order), GRU ``z, r, h``.
No peepholes, default activations (sigmoid, tanh), forward direction (run a reversed sequence for
the backward one). Bias folding (fp32): LSTM adds ``Wb + Rb`` to ``X·Wᵀ``; GRU adds ``Wb + Rb``
for z and r, and for h either ``Wbh + Rbh`` (``linear_before_reset=0``) or ``Wbh`` with ``Rbh``
added to ``H·Rhᵀ`` inside the reset product (``linear_before_reset=1``).

LSTM:  g = xw + hr;  i, o, f = σ(g_i), σ(g_o), σ(g_f);  c̃ = tanh(g_c)
       c = f*c_prev + i*c̃;  h = o*tanh(c)
GRU:   z = σ(xw_z + hr_z);  r = σ(xw_r + hr_r)
       lbr=0: h̃ = tanh(xw_h + dqmm(r*h_prev, Rh));  lbr=1: h̃ = tanh(xw_h + r*(dqmm(h_prev, Rh) + Rbh))
       h = (1 - z)*h̃ + z*h_prev
RNN:   h = tanh(xw + hr)   (Wb + Rb folded into xw)

σ and tanh use :func:`exp_f32`, an exp built from fp32 +, -, *, / only (Cody-Waite range reduction,
degree-6 polynomial, exact scaling by 2**n), so C and numpy agree to the bit:
σ(x) = 1 / (1 + exp(-x)), tanh(x) = copysign((1 - t) / (1 + t), x) with t = exp(-2|x|).
"""

from __future__ import annotations

import numpy as np

from onnxq.kernels.reference.dynamic import dynamic_matmul

__all__ = [
    "dynamic_rnn",
    "exp_f32",
    "gru_cell",
    "gru_sequence",
    "lstm_cell",
    "lstm_sequence",
    "rnn_cell",
    "rnn_sequence",
    "sigmoid_f32",
    "tanh_f32",
]

_F32 = np.float32
_LOG2E = _F32(1.44269504088896341)
_LN2_HI = _F32(0.693145751953125)
_LN2_LO = _F32(1.42860676533018672e-06)
_POLY = [
    _F32(1.0 / 720.0),
    _F32(1.0 / 120.0),
    _F32(1.0 / 24.0),
    _F32(1.0 / 6.0),
    _F32(0.5),
    _F32(1.0),
    _F32(1.0),
]
_EXP_MIN = _F32(-87.0)
_EXP_MAX = _F32(88.0)


def exp_f32(x: np.ndarray) -> np.ndarray:
    """exp(x) in fp32 from basic operations only (about 1 ulp; input clamped to [-87, 88])."""
    x = np.clip(np.asarray(x, dtype=_F32), _EXP_MIN, _EXP_MAX)
    n = np.rint((x * _LOG2E).astype(_F32)).astype(_F32)
    r = (x - (n * _LN2_HI).astype(_F32)).astype(_F32)
    r = (r - (n * _LN2_LO).astype(_F32)).astype(_F32)
    p = np.full_like(r, _POLY[0])
    for c in _POLY[1:]:
        p = ((p * r).astype(_F32) + c).astype(_F32)
    two_n = np.ldexp(_F32(1), n.astype(np.int32)).astype(_F32)
    return (p * two_n).astype(_F32)


def sigmoid_f32(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) in fp32."""
    x = np.asarray(x, dtype=_F32)
    return (_F32(1) / (_F32(1) + exp_f32(-x)).astype(_F32)).astype(_F32)


def tanh_f32(x: np.ndarray) -> np.ndarray:
    """tanh(x) = sign(x) * (1 - t) / (1 + t), t = exp(-2|x|), in fp32."""
    x = np.asarray(x, dtype=_F32)
    t = exp_f32((_F32(-2) * np.abs(x)).astype(_F32))
    v = ((_F32(1) - t).astype(_F32) / (_F32(1) + t).astype(_F32)).astype(_F32)
    return np.copysign(v, x).astype(_F32)


def _bias_sum(wb: np.ndarray | None, rb: np.ndarray | None, n: int) -> np.ndarray | None:
    if wb is None and rb is None:
        return None
    w = np.zeros(n, _F32) if wb is None else np.asarray(wb, _F32)
    r = np.zeros(n, _F32) if rb is None else np.asarray(rb, _F32)
    return (w + r).astype(_F32)


def lstm_cell(
    x: np.ndarray,
    h_prev: np.ndarray,
    c_prev: np.ndarray,
    w: np.ndarray,
    w_scale: np.ndarray,
    r: np.ndarray,
    r_scale: np.ndarray,
    wb: np.ndarray | None = None,
    rb: np.ndarray | None = None,
    per_row: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """One LSTM step: ``x[B, I]``, ``h_prev/c_prev[B, H]``, s8 ``w[4H, I]``, ``r[4H, H]`` with
    per-row scales, optional fp32 biases ``wb/rb[4H]`` → ``(h, c)`` fp32 ``[B, H]``."""
    hidden = np.asarray(h_prev).shape[1]
    xw = dynamic_matmul(x, w, w_scale, _bias_sum(wb, rb, 4 * hidden), per_row=per_row)
    hr = dynamic_matmul(h_prev, r, r_scale, None, per_row=per_row)
    g = (xw + hr).astype(_F32)
    i = sigmoid_f32(g[:, :hidden])
    o = sigmoid_f32(g[:, hidden : 2 * hidden])
    f = sigmoid_f32(g[:, 2 * hidden : 3 * hidden])
    cc = tanh_f32(g[:, 3 * hidden :])
    c = ((f * np.asarray(c_prev, _F32)).astype(_F32) + (i * cc).astype(_F32)).astype(_F32)
    h = (o * tanh_f32(c)).astype(_F32)
    return h, c


def gru_cell(
    x: np.ndarray,
    h_prev: np.ndarray,
    w: np.ndarray,
    w_scale: np.ndarray,
    r: np.ndarray,
    r_scale: np.ndarray,
    wb: np.ndarray | None = None,
    rb: np.ndarray | None = None,
    linear_before_reset: bool = False,
    per_row: bool = False,
) -> np.ndarray:
    """One GRU step: ``x[B, I]``, ``h_prev[B, H]``, s8 ``w[3H, I]``, ``r[3H, H]`` with per-row
    scales, optional fp32 biases ``wb/rb[3H]`` → ``h`` fp32 ``[B, H]``."""
    h_prev = np.asarray(h_prev, _F32)
    hidden = h_prev.shape[1]
    r = np.asarray(r)
    r_scale = np.broadcast_to(np.atleast_1d(np.asarray(r_scale, _F32)), (3 * hidden,))
    wbv = np.zeros(3 * hidden, _F32) if wb is None else np.asarray(wb, _F32)
    rbv = np.zeros(3 * hidden, _F32) if rb is None else np.asarray(rb, _F32)
    has_bias = wb is not None or rb is not None
    bias_x = (wbv + rbv).astype(_F32)
    if linear_before_reset:
        bias_x[2 * hidden :] = wbv[2 * hidden :]
    xw = dynamic_matmul(x, w, w_scale, bias_x if has_bias else None, per_row=per_row)
    hr = dynamic_matmul(h_prev, r[: 2 * hidden], r_scale[: 2 * hidden], None, per_row=per_row)
    z = sigmoid_f32((xw[:, :hidden] + hr[:, :hidden]).astype(_F32))
    rg = sigmoid_f32((xw[:, hidden : 2 * hidden] + hr[:, hidden:]).astype(_F32))
    if linear_before_reset:
        rh = dynamic_matmul(
            h_prev,
            r[2 * hidden :],
            r_scale[2 * hidden :],
            rbv[2 * hidden :] if has_bias else None,
            per_row=per_row,
        )
        pre = (xw[:, 2 * hidden :] + (rg * rh).astype(_F32)).astype(_F32)
    else:
        rh = dynamic_matmul(
            (rg * h_prev).astype(_F32), r[2 * hidden :], r_scale[2 * hidden :], None, per_row=per_row
        )
        pre = (xw[:, 2 * hidden :] + rh).astype(_F32)
    hh = tanh_f32(pre)
    one_minus_z = (_F32(1) - z).astype(_F32)
    return ((one_minus_z * hh).astype(_F32) + (z * h_prev).astype(_F32)).astype(_F32)


def lstm_sequence(
    xs: np.ndarray,
    h0: np.ndarray,
    c0: np.ndarray,
    w: np.ndarray,
    w_scale: np.ndarray,
    r: np.ndarray,
    r_scale: np.ndarray,
    wb: np.ndarray | None = None,
    rb: np.ndarray | None = None,
    per_row: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run :func:`lstm_cell` over ``xs[T, B, I]`` → ``(y[T, B, H], h_T, c_T)``."""
    h, c = np.asarray(h0, _F32), np.asarray(c0, _F32)
    ys = []
    for x in np.asarray(xs, _F32):
        h, c = lstm_cell(x, h, c, w, w_scale, r, r_scale, wb, rb, per_row)
        ys.append(h)
    return np.stack(ys), h, c


def gru_sequence(
    xs: np.ndarray,
    h0: np.ndarray,
    w: np.ndarray,
    w_scale: np.ndarray,
    r: np.ndarray,
    r_scale: np.ndarray,
    wb: np.ndarray | None = None,
    rb: np.ndarray | None = None,
    linear_before_reset: bool = False,
    per_row: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Run :func:`gru_cell` over ``xs[T, B, I]`` → ``(y[T, B, H], h_T)``."""
    return _state_sequence(
        lambda x, h: gru_cell(x, h, w, w_scale, r, r_scale, wb, rb, linear_before_reset, per_row), xs, h0
    )


def rnn_cell(
    x: np.ndarray,
    h_prev: np.ndarray,
    w: np.ndarray,
    w_scale: np.ndarray,
    r: np.ndarray,
    r_scale: np.ndarray,
    wb: np.ndarray | None = None,
    rb: np.ndarray | None = None,
    per_row: bool = False,
) -> np.ndarray:
    """One plain-RNN step: ``x[B, I]``, ``h_prev[B, H]``, s8 ``w[H, I]``, ``r[H, H]`` with per-row
    scales, optional fp32 biases ``wb/rb[H]`` → ``h = tanh(xw + hr)`` fp32 ``[B, H]``."""
    hidden = np.asarray(h_prev).shape[1]
    xw = dynamic_matmul(x, w, w_scale, _bias_sum(wb, rb, hidden), per_row=per_row)
    hr = dynamic_matmul(h_prev, r, r_scale, None, per_row=per_row)
    return tanh_f32((xw + hr).astype(_F32))


def rnn_sequence(
    xs: np.ndarray,
    h0: np.ndarray,
    w: np.ndarray,
    w_scale: np.ndarray,
    r: np.ndarray,
    r_scale: np.ndarray,
    wb: np.ndarray | None = None,
    rb: np.ndarray | None = None,
    per_row: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Run :func:`rnn_cell` over ``xs[T, B, I]`` → ``(y[T, B, H], h_T)``."""
    return _state_sequence(lambda x, h: rnn_cell(x, h, w, w_scale, r, r_scale, wb, rb, per_row), xs, h0)


def _state_sequence(step, xs: np.ndarray, h0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """``h = step(x, h)`` over ``xs`` from ``h0`` → ``(y[T, B, H], h_T)``."""
    h = np.asarray(h0, _F32)
    ys = []
    for x in np.asarray(xs, _F32):
        h = step(x, h)
        ys.append(h)
    return np.stack(ys), h


#: Gates per op kind.
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def dynamic_rnn(
    kind: str,
    x: np.ndarray,
    w: np.ndarray,
    w_scale: np.ndarray | float,
    r: np.ndarray,
    r_scale: np.ndarray | float,
    b: np.ndarray | None = None,
    sequence_lens: np.ndarray | None = None,
    initial_h: np.ndarray | None = None,
    initial_c: np.ndarray | None = None,
    *,
    direction: str = "forward",
    layout: int = 0,
    linear_before_reset: int = 0,
) -> list[np.ndarray]:
    """``ai.onnxq.Dynamic{LSTM,GRU,RNN}`` (docs/custom_ops.md): the ONNX op of ``kind`` with s8
    ``w[D, G*H, I]``, ``r[D, G*H, H]``, scales of 1 or ``D*G*H`` values, ``b[D, 2*G*H]`` →
    ``[Y, Y_h]`` (LSTM: ``[Y, Y_h, Y_c]``) in the shapes ``layout`` says.

    Each direction runs on its own. Without ``sequence_lens`` it is one sequence over the whole
    batch (each step's matmul inputs quantized per tensor); with it, each batch row runs alone
    over its own length (Y is 0 past it, the states are those of its last step). A backward
    direction runs its valid steps last to first.
    """
    gates = GATES[kind]
    x = np.asarray(x, _F32)
    if layout:
        x = x.transpose(1, 0, 2)  # [T, B, I]
    steps, batch, _ = x.shape
    w, r = np.asarray(w, np.int8), np.asarray(r, np.int8)
    dirs, rows = w.shape[0], w.shape[1]
    hidden = rows // gates

    def scales(s: np.ndarray | float) -> np.ndarray:
        s = np.asarray(s, _F32).reshape(-1)
        return np.broadcast_to(s, (dirs * rows,)).reshape(dirs, rows) if s.size == 1 else s.reshape(-1, rows)

    ws, rs = scales(w_scale), scales(r_scale)

    def state(v: np.ndarray | None) -> np.ndarray:
        if v is None:
            return np.zeros((dirs, batch, hidden), _F32)
        v = np.asarray(v, _F32)
        return v.transpose(1, 0, 2) if layout else v  # [D, B, H]

    h0, c0 = state(initial_h), state(initial_c)
    y = np.zeros((steps, dirs, batch, hidden), _F32)
    yh = np.zeros((dirs, batch, hidden), _F32)
    yc = np.zeros((dirs, batch, hidden), _F32)
    groups = [(0, batch, steps)] if sequence_lens is None else [
        (i, 1, int(n)) for i, n in enumerate(np.asarray(sequence_lens).reshape(-1))
    ]
    for d in range(dirs):
        backward = direction == "reverse" or d == 1
        wb = rb = None
        if b is not None:
            bd = np.asarray(b, _F32)[d]
            wb, rb = bd[:rows], bd[rows:]
        for b0, nb, length in groups:
            rows_ = slice(b0, b0 + nb)
            xs = x[:length, rows_]
            if backward:
                xs = xs[::-1]
            args = (w[d], ws[d], r[d], rs[d], wb, rb)
            if kind == "LSTM":
                ys, h, c = lstm_sequence(xs, h0[d, rows_], c0[d, rows_], *args)
                yc[d, rows_] = c
            elif kind == "GRU":
                ys, h = gru_sequence(xs, h0[d, rows_], *args, bool(linear_before_reset))
            else:
                ys, h = rnn_sequence(xs, h0[d, rows_], *args)
            y[:length, d, rows_] = ys[::-1] if backward else ys
            yh[d, rows_] = h
    if layout:
        y, yh, yc = y.transpose(2, 0, 1, 3), yh.transpose(1, 0, 2), yc.transpose(1, 0, 2)
    outs = [np.ascontiguousarray(y), np.ascontiguousarray(yh)]
    return [*outs, np.ascontiguousarray(yc)] if kind == "LSTM" else outs
