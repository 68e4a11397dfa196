"""Fake quantization for quantization-aware training, the torch twin of :mod:`onnxq.qparams`.

``fake_quantize(x, s, z, qmin, qmax) = (clamp(round(x / s) + z, qmin, qmax) - z) * s`` with the
straight-through estimator: ``round`` passes the gradient through unchanged, ``clamp`` zeroes it
outside the range. When ``s`` is a learnable parameter this is LSQ (Esser et al., 2020): the
gradient reaches the scale through the same expression, scaled by ``1 / sqrt(numel * qmax)``.

:func:`choose_qparams` computes scale and zero point from a range exactly as
:func:`onnxq.qparams.choose_qparams` does (in float64, the scale rounded to float32), so a weight
fake-quantized here rounds to the integers onnxq's round-to-nearest stores at conversion.
:func:`fake_quantize_bias` rounds a bias to the int32 grid ``s_in * s_w`` the converter stores it on.

:class:`FakeQuantize` quantizes activations per tensor: while ``observing`` it tracks the range
(min/max, or a moving average of each batch's min/max), then it keeps its scale and zero point.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from onnxq.qconfig import QSpec
from onnxq.qparams import qdtype, qrange

_EPS = float(torch.finfo(torch.float32).eps)
_FLOAT32_MAX = float(torch.finfo(torch.float32).max)
_INT32 = torch.iinfo(torch.int32)
OBSERVERS = ("minmax", "moving_average")


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return (torch.round(x) - x).detach() + x


def fake_quantize(
    x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int
) -> torch.Tensor:
    """``(clamp(round(x / scale) + zero_point, qmin, qmax) - zero_point) * scale`` with the STE."""
    q = torch.clamp(_round_ste(x / scale) + zero_point, qmin, qmax)
    return (q - zero_point) * scale


def choose_qparams(
    lo: torch.Tensor, hi: torch.Tensor, qmin: int, qmax: int, symmetric: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale (float32) and zero point (float, integral) of the range ``[lo, hi]`` as onnxq chooses them."""
    lo64 = torch.clamp(lo.detach().double(), max=0.0)
    hi64 = torch.clamp(hi.detach().double(), min=0.0)
    if symmetric:
        width = torch.maximum(-lo64, hi64)
        scale = width / ((qmax - qmin) / 2.0)
        zp = torch.full_like(scale, float((qmin + qmax + 1) // 2))
    else:
        width = hi64 - lo64
        scale = width / float(qmax - qmin)
    scale = torch.where(width == 0, torch.ones_like(scale), torch.clamp(scale, min=_EPS)).float()
    if not symmetric:
        zp = torch.clamp(qmin - torch.round(lo64 / scale.double()), qmin, qmax)
    return scale, zp.float()


def spec_range(spec: QSpec) -> tuple[int, int]:
    return qrange(spec.dtype, spec.symmetric, spec.reduce_range)


def weight_qparams(w: torch.Tensor, spec: QSpec, per_channel: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point of ``w`` as onnxq's min/max weight observers choose them, per output
    channel on axis 0 (shaped to broadcast against ``w``) or per tensor; no gradient."""
    qmin, qmax = spec_range(spec)
    flat = w.detach().reshape(w.shape[0], -1) if per_channel else w.detach().reshape(1, -1)
    scale, zp = choose_qparams(flat.min(dim=1).values, flat.max(dim=1).values, qmin, qmax, spec.symmetric)
    shape = (-1,) + (1,) * (w.dim() - 1) if per_channel else ()
    return scale.reshape(shape), zp.reshape(shape)


def fake_quantize_weight(w: torch.Tensor, spec: QSpec, per_channel: bool) -> torch.Tensor:
    """``w`` fake-quantized as onnxq's round-to-nearest stores it (:func:`weight_qparams`); the
    scale follows the weight and gets no gradient."""
    scale, zp = weight_qparams(w, spec, per_channel)
    return fake_quantize(w, scale, zp, *spec_range(spec))


def fake_quantize_bias(
    b: torch.Tensor, input_scale: torch.Tensor, weight_scale: torch.Tensor
) -> torch.Tensor:
    """``b`` as the int32 bias onnxq stores (:func:`onnxq.qparams.quantize_bias`):
    ``round(b / s_b) * s_b`` with ``s_b = float32(s_in * s_w)`` per output channel (the product and
    the division in float64), saturating at int32; the rounding passes the gradient straight through.
    """
    wide = input_scale.detach().double() * weight_scale.detach().double().reshape(-1)
    b_scale = torch.clamp(wide, max=_FLOAT32_MAX).float()
    b_scale = torch.where(b_scale > 0, b_scale, torch.full_like(b_scale, _EPS)).double()
    q = torch.clamp(_round_ste(b.double() / b_scale), _INT32.min, _INT32.max)
    return (q * b_scale).to(b.dtype)


class FakeQuantize(nn.Module):
    """Per-tensor fake quantization of an activation, as ``spec`` (dtype, symmetric, reduce_range).

    ``observer``: "minmax" (the range seen so far) or "moving_average" (each batch's min/max,
    averaged with ``averaging_constant``). ``learnable``: after observing, the scale becomes a
    parameter trained with LSQ's gradient. The owner sets :attr:`observing`.
    """

    def __init__(
        self,
        spec: QSpec,
        *,
        observer: str = "moving_average",
        averaging_constant: float = 0.01,
        learnable: bool = False,
    ) -> None:
        super().__init__()
        if observer not in OBSERVERS:
            raise ValueError(f"observer must be one of {OBSERVERS}, got {observer!r}")
        self.spec = spec
        self.qmin, self.qmax = spec_range(spec)
        storage = qdtype(spec.dtype)
        self.clamp_min, self.clamp_max = storage.qmin, storage.qmax
        self.observer = observer
        self.averaging_constant = averaging_constant
        self.learnable = learnable
        self.observing = True
        self.register_buffer("min_val", torch.tensor(float("inf")))
        self.register_buffer("max_val", torch.tensor(float("-inf")))
        self.register_buffer("zero_point", torch.tensor(0.0))
        self.scale = nn.Parameter(torch.tensor(1.0), requires_grad=learnable)

    @property
    def observed(self) -> bool:
        return bool(torch.isfinite(self.min_val))

    def qparams(self) -> tuple[float, int]:
        """The scale and zero point onnxq's QDQ model gets."""
        if not self.observed:
            raise ValueError("this fake-quant has seen no data: train the QAT module for a step first")
        return float(self.scale.detach()), int(self.zero_point)

    def _observe(self, x: torch.Tensor) -> None:
        lo, hi = x.detach().min(), x.detach().max()
        if self.observer == "minmax" or not self.observed:
            lo, hi = (
                (torch.minimum(lo, self.min_val), torch.maximum(hi, self.max_val))
                if self.observed
                else (lo, hi)
            )
        else:
            c = self.averaging_constant
            lo, hi = self.min_val + c * (lo - self.min_val), self.max_val + c * (hi - self.max_val)
        self.min_val.copy_(lo)
        self.max_val.copy_(hi)
        scale, zp = choose_qparams(lo, hi, self.qmin, self.qmax, self.spec.symmetric)
        with torch.no_grad():
            self.scale.copy_(scale)
        self.zero_point.copy_(zp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.observing:
            self._observe(x)
        if not self.observed:
            return x
        scale = self.scale
        if self.learnable and self.training and not self.observing:
            grad = 1.0 / math.sqrt(x.numel() * self.qmax)
            scale = (scale - scale * grad).detach() + scale * grad  # LSQ's gradient scaling
            scale = torch.clamp(scale, min=_EPS)
        else:
            scale = scale.detach()
        # the scale comes from the (possibly reduced) range, the clamp is QuantizeLinear's: the
        # exported Q saturates at the storage type's limits, not at the reduced range's
        return fake_quantize(x, scale, self.zero_point, self.clamp_min, self.clamp_max)

    def extra_repr(self) -> str:
        return (
            f"{self.spec.dtype}, range=[{self.qmin}, {self.qmax}], observer={self.observer}, "
            f"learnable={self.learnable}"
        )


__all__ = [
    "FakeQuantize",
    "choose_qparams",
    "fake_quantize",
    "fake_quantize_bias",
    "fake_quantize_weight",
    "weight_qparams",
]
