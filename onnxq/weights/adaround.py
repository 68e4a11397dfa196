"""AdaRound (Nagel et al. 2020, "Up or Down? Adaptive Rounding for Post-Training Quantization").

Rounding each weight to nearest minimises the weight's own error, not the layer's output error.
With the layer as a matrix ``W`` (``[Cout, K]``: a Conv's weight flattened per output channel, a
Gemm/MatMul's weight with outputs as rows) and ``X`` a sample of its input rows (``[N, K]``: input
patches of a Conv, rows of a Gemm), AdaRound learns for every weight whether it rounds down or up::

    W~ = s * (clip(floor(W / s) + h(V) + z, qmin, qmax) - z)
    h(V) = clip(sigmoid(V) * (zeta - gamma) + gamma, 0, 1)        zeta = 1.1, gamma = -0.1

    minimise   ||X W' - X W~'||^2_F / N  +  lambda * sum_ij (1 - |2 h(V_ij) - 1|^beta)

The rectified sigmoid ``h`` reaches 0 and 1 exactly; the regulariser pushes every ``h`` to one of
them, and its exponent ``beta`` is annealed from 20 to 2 after a warm-up (20% of the iterations,
no regulariser), so rounding is free to move early and frozen late. ``V`` starts where ``h(V)``
equals the fractional part ``W / s - floor(W / s)`` (round to nearest's choice, softly). The
reconstruction term uses ``H = X' X / N`` (``K x K``), computed once, so an iteration costs
``O(Cout K^2)`` whatever ``N``: ``loss = tr(D H D')`` with ``D = W~ - W`` and gradient ``2 D H``.
The output error is normalised by that of round to nearest, so ``lambda`` means the same on
every layer. Adam (a few lines here) updates ``V``; at the end each weight is rounded up where
``h(V) >= 0.5``. The result is kept only when its output error on ``X`` is below round to
nearest's, so AdaRound is never worse on the data it saw.

**Solvers.** ``solver="descent"`` (the default) minimises the same reconstruction error over the
same up/down choices without the relaxation: starting from round to nearest, it sweeps the
columns ``k`` of every row at once and flips a weight's rounding (``delta = +-s``) wherever that
lowers the row's error, ``2 g_k delta + H_kk delta^2 < 0`` with ``g = D H`` kept up to date by a
rank-one update per flip. Each sweep costs ``O(Cout K^2)``, as one Adam step does; it stops when
a sweep flips nothing (no single flip lowers the error: a local minimum) or after ``sweeps``
sweeps. On the digits CNN at 4 bits it was ~10x faster than 300 Adam steps and no worse
(``scripts/bench_accuracy.py --adaround``). ``solver="adam"`` is the paper's relaxation; it stops
early once every choice is made (every ``h`` exactly 0 or 1).

The scale and zero point are round to nearest's (:func:`onnxq.weights.rtn.weight_qparams`):
AdaRound changes the integers only. ``X`` is a reservoir of at most ``rows`` input rows per layer
(:class:`onnxq.accuracy.layer_inputs.InputReservoir`, filled while calibrating; fixed memory).
Conv (``group = 1``), Gemm (``transA = 0``) and MatMul with a 2-D weight, per-tensor or per output
channel; other weights (per block, grouped Convs) and layers without inputs are rounded to nearest.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from onnxq.errors import ConfigError
from onnxq.qparams import QParams, qrange
from onnxq.scheme import PerBlock, PerChannel
from onnxq.weights.registry import QuantizedTensor, WeightRequest, register_weight_method
from onnxq.weights.rtn import quantize_weight, weight_qparams

logger = logging.getLogger(__name__)

ZETA, GAMMA = 1.1, -0.1
SOLVERS = ("descent", "adam")


@dataclass(frozen=True)
class AdaRoundConfig:
    """AdaRound's settings (``schemas/adaround.schema.json``).

    Attributes:
        solver: ``"descent"`` (greedy rounding flips, the default) or ``"adam"`` (the paper's
            relaxation); see the module docstring.
        sweeps: ``descent``: the most sweeps over the columns per layer (it stops earlier when a
            sweep flips nothing).
        iterations: ``adam``: Adam steps per layer (small by default: the layers of post-training models
            converge in a few hundred on ``H``).
        rows: Input rows (patches) kept per layer while calibrating.
        reg_weight: ``lambda``, the regulariser's weight relative to the normalised output error.
        beta_start, beta_end: The regulariser's exponent, annealed linearly after the warm-up.
        warmup: Fraction of the iterations without regulariser.
        lr: Adam's learning rate on ``V``.
        seed: The reservoir's random draws.
    """

    solver: str = "descent"
    sweeps: int = 20
    iterations: int = 300
    rows: int = 1024
    reg_weight: float = 0.01
    beta_start: float = 20.0
    beta_end: float = 2.0
    warmup: float = 0.2
    lr: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ConfigError(f"adaround.solver: expected one of {', '.join(SOLVERS)}, got {self.solver!r}")
        for name in ("sweeps", "iterations", "rows", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "seed" else 1):
                raise ConfigError(f"adaround.{name}: expected a positive integer, got {v!r}")
        for name in ("reg_weight", "beta_start", "beta_end", "lr", "warmup"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
                raise ConfigError(f"adaround.{name}: expected a number >= 0, got {v!r}")
        if self.warmup >= 1 or self.lr == 0 or self.beta_end <= 0:
            raise ConfigError("adaround: warmup must be below 1, lr and beta_end above 0")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> AdaRoundConfig:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"adaround: unknown key(s) {', '.join(sorted(unknown))}")
        return cls(**d)  # type: ignore[arg-type]

    @classmethod
    def from_json_file(cls, path: str | Path) -> AdaRoundConfig:
        """Settings from a JSON object (``schemas/adaround.schema.json``); errors name the file."""
        from onnxq.io import read_json_file  # lazy: io imports onnx

        data = read_json_file(path, "AdaRound settings file", ConfigError, 1 << 20)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: AdaRound settings must be a JSON object")
        try:
            return cls.from_dict(data)
        except (ConfigError, TypeError) as e:
            raise ConfigError(f"{path}: {e}") from None


def _rect_sigmoid(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``h(V)`` and ``dh/dV`` (0 where clipped)."""
    sig = 1.0 / (1.0 + np.exp(-v))
    raw = sig * np.float32(ZETA - GAMMA) + np.float32(GAMMA)
    grad = np.where((raw > 0) & (raw < 1), sig * (1 - sig) * np.float32(ZETA - GAMMA), np.float32(0))
    return np.clip(raw, 0, 1), grad


def adaround_matrix(
    w: np.ndarray,
    scale: np.ndarray,
    zero_point: np.ndarray,
    qmin: int,
    qmax: int,
    x: np.ndarray,
    config: AdaRoundConfig = AdaRoundConfig(),
) -> np.ndarray:
    """The integer matrix AdaRound learns for ``w`` (``[Cout, K]``) on input rows ``x`` (``[N, K]``);
    ``scale`` and ``zero_point`` broadcast against ``w`` (a scalar, or ``[Cout, 1]``)."""
    w64 = np.asarray(w, np.float64)
    s = np.broadcast_to(np.asarray(scale, np.float64), w64.shape)
    z = np.broadcast_to(np.asarray(zero_point, np.float64), w64.shape)
    x = np.asarray(x, np.float64)
    h_mat = x.T @ x / max(len(x), 1)
    floor = np.floor(w64 / s)

    def out_err(w_q: np.ndarray) -> float:
        d = w_q - w64
        return float(np.sum((d @ h_mat) * d))

    nearest = np.clip(np.round(w64 / s) + z, qmin, qmax)
    rtn_err = out_err(s * (nearest - z))
    if rtn_err <= 0:
        return nearest
    inside = (floor + z >= qmin) & (floor + 1 + z <= qmax)  # where the rounding choice matters
    if not inside.any():
        return nearest
    # only the rows and columns with a choice to make are optimised; the rest is a constant offset
    if config.solver == "descent":
        step = np.where(inside, s, 0.0)
        up = _descent(s * (nearest - z) - w64, step, nearest - z > floor, h_mat, config.sweeps)
    else:
        fixed = s * (np.clip(floor + z, qmin, qmax) - z) - w64  # the error of rounding down (or clipped)
        v = _optimise(w64 / s - floor, np.where(inside, s, 0.0), fixed, h_mat / rtn_err, config)
        up = _rect_sigmoid(v)[0] >= 0.5
    learned = np.clip(floor + up * inside + z, qmin, qmax)
    ada_err = out_err(s * (learned - z))
    logger.debug("adaround: output error %.4g (round to nearest %.4g)", ada_err, rtn_err)
    return learned if ada_err < rtn_err else nearest


def _descent(d: np.ndarray, step: np.ndarray, up: np.ndarray, h_mat: np.ndarray, sweeps: int) -> np.ndarray:
    """Greedy rounding flips (module docstring): ``d`` the error ``W~ - W`` of the start (round to
    nearest), ``step`` the scale where a weight has a choice (0 elsewhere), ``up`` whether each
    weight rounds up; returns ``up`` where no single flip lowers any row's ``d H d'``."""
    up = up.copy()
    g = d @ h_mat  # half the gradient of each row's error, kept up to date
    diag = np.diag(h_mat)
    rows = np.arange(len(d))
    for sweep in range(sweeps):
        flips = 0
        for k in range(d.shape[1]):
            delta = np.where(up[:, k], -step[:, k], step[:, k])
            better = (2 * g[:, k] * delta + diag[k] * delta * delta < 0) & (delta != 0)
            if better.any():
                r = rows[better]
                up[r, k] = ~up[r, k]
                g[r] += delta[r, None] * h_mat[k]
                flips += len(r)
        logger.debug("adaround: sweep %d flipped %d rounding(s)", sweep + 1, flips)
        if not flips:
            break
    return up


def _optimise(
    frac: np.ndarray, step: np.ndarray, fixed: np.ndarray, h_norm: np.ndarray, config: AdaRoundConfig
) -> np.ndarray:
    """Adam on ``V`` (float32) for ``loss = tr(D H D') + reg`` with ``D = step * h(V) + fixed``;
    stops early once every ``h`` with a choice to make is exactly 0 or 1 (rounding is then frozen:
    ``dh/dV`` is 0 there, so only momentum is left to move ``V``)."""
    f32 = np.float32
    frac = np.clip((frac - GAMMA) / (ZETA - GAMMA), 1e-4, 1 - 1e-4)
    v = np.log(frac / (1 - frac)).astype(f32)
    step32, fixed32, h32 = step.astype(f32), fixed.astype(f32), h_norm.astype(f32)
    free = step32 != 0
    m, u = np.zeros_like(v), np.zeros_like(v)
    warm = int(config.warmup * config.iterations)
    b1, b2, lr = f32(0.9), f32(0.999), f32(config.lr)
    for t in range(1, config.iterations + 1):
        h, dh = _rect_sigmoid(v)
        d = step32 * h + fixed32
        grad_h = f32(2) * (d @ h32) * step32
        if t > warm:
            frac_done = (t - warm) / max(config.iterations - warm, 1)
            beta = f32(config.beta_start + (config.beta_end - config.beta_start) * frac_done)
            c = 2 * h - 1
            grad_h -= f32(2 * config.reg_weight) * beta * np.abs(c) ** (beta - 1) * np.sign(c)
            if t % 10 == 0 and not np.any(free & (h > 0) & (h < 1)):
                logger.debug("adaround: rounding frozen after %d of %d steps", t, config.iterations)
                break
        g = grad_h * dh
        m = b1 * m + (1 - b1) * g
        u = b2 * u + (1 - b2) * g * g
        v -= lr * (m / f32(1 - 0.9**t)) / (np.sqrt(u / f32(1 - 0.999**t)) + f32(1e-8))
    return v


def _as_matrix(request: WeightRequest) -> tuple[np.ndarray, bool] | None:
    """The weight as ``[Cout, K]`` and whether that is its transpose; None where not supported."""
    w = request.weight
    if request.op_type == "Conv" and w.ndim >= 3:
        return w.reshape(w.shape[0], -1), False
    if request.op_type in ("Gemm", "MatMul") and w.ndim == 2:
        trans = request.op_type == "MatMul" or not request.trans_b
        return (w.T if trans else w), trans
    return None


def adaround_weight(request: WeightRequest, config: AdaRoundConfig = AdaRoundConfig()) -> QuantizedTensor:
    """AdaRound on one weight (round to nearest where it does not apply)."""
    matrix = _as_matrix(request)
    gran = request.granularity
    x = request.inputs
    if matrix is None or x is None or len(x) == 0 or isinstance(gran, PerBlock):
        values, qp = quantize_weight(request.weight, request.spec, gran)
        return QuantizedTensor(values, qp)
    w_mat, transposed = matrix
    if x.shape[1] != w_mat.shape[1] or not np.all(np.isfinite(request.weight)):
        values, qp = quantize_weight(request.weight, request.spec, gran)
        return QuantizedTensor(values, qp)
    qp: QParams = weight_qparams(request.weight, request.spec, gran)
    scale, zp = np.asarray(qp.scale, np.float64), np.asarray(qp.zero_point, np.float64)
    if isinstance(gran, PerChannel):  # the output channels: rows of the matrix
        scale, zp = scale.reshape(-1, 1), zp.reshape(-1, 1)
    qmin, qmax = qrange(request.spec.dtype, request.spec.symmetric, request.spec.reduce_range)
    learned = adaround_matrix(w_mat, scale, zp, qmin, qmax, x, config)
    learned = learned.T if transposed else learned
    values = learned.reshape(request.weight.shape).astype(np.asarray(qp.zero_point).dtype)
    return QuantizedTensor(values, qp)


@register_weight_method("adaround", data="inputs", config=AdaRoundConfig)
def adaround(request: WeightRequest, config: AdaRoundConfig = AdaRoundConfig()) -> QuantizedTensor:
    """AdaRound with ``config`` (``convert(weight_method="adaround", weight_config=...)``)."""
    return adaround_weight(request, config)


__all__ = ["SOLVERS", "AdaRoundConfig", "adaround", "adaround_matrix", "adaround_weight"]
