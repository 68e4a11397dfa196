"""FixedQParamsObserver: scale and zero point fixed in advance, whatever is observed.

The counterpart of PyTorch's ``FixedQParamsObserver`` for outputs whose range is known: a
Sigmoid or Softmax output lies in ``[0, 1]``, a Tanh output in ``[-1, 1]``. Spreading that range
over all ``2**8`` levels gives

* Sigmoid / Softmax: ``scale = 1/256``, ``zero_point = 0`` (uint8) or ``-128`` (int8);
* Tanh: ``scale = 2/256``, ``zero_point = 128`` (uint8) or ``0`` (int8),

PyTorch's ``default_fixed_qparams_range_0to1_observer`` / ``..._neg1to1_observer`` and the values
:func:`onnxq.qparams.fixed_qparams` gives the fixed-range op rules. :data:`SIGMOID_SOFTMAX`,
:data:`TANH` and their ``_INT8`` twins are ready-made ``observer_args``.

``update`` only counts: whether a finite value was seen (``reached``) and how many were not.
``merge`` needs equal settings. ``qparams`` checks that the zero point lies in the requested
integer range (``qrange(dtype, symmetric, reduce_range)``) and returns the fixed values as they
are: there is nothing to choose, so :func:`onnxq.qparams.choose_qparams` is not involved.

In a QConfigMapping the observer belongs to an activation spec, so an entry per op type gives
these parameters to the tensors that nodes of that type plan::

    sigmoid = QSpec("uint8", observer="fixed_qparams", observer_args=SIGMOID_SOFTMAX)
    mapping = QConfigMapping(global_qconfig=qc).set_op_type("Sigmoid", QConfig(sigmoid, qc.weight))

For Sigmoid, Softmax and Tanh the op rules already fix the output's parameters
(``QConfig.fixed_ranges="always"``); with ``fixed_ranges="when_filled"`` the output is observed,
and this observer always fills the known range, so the fixed parameters are kept. A node's spec
also covers the inputs it is the first to plan (a graph input feeding a Sigmoid directly), so
pin those by node name rather than by op type when the input's range is not the output's.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from onnxq.calibration.observers._util import as_float, check_state_fields, count_field, finite_min_max
from onnxq.calibration.observers.base import register_observer
from onnxq.errors import ConfigError
from onnxq.qparams import QParams, qrange
from onnxq.scheme import qdtype

#: ``observer_args`` of a uint8 Sigmoid or Softmax output, range [0, 1].
SIGMOID_SOFTMAX: Mapping[str, Any] = MappingProxyType({"scale": 1.0 / 256.0, "zero_point": 0})
#: ``observer_args`` of a uint8 Tanh output, range [-1, 1].
TANH: Mapping[str, Any] = MappingProxyType({"scale": 2.0 / 256.0, "zero_point": 128})
#: The int8 twins of the two above.
SIGMOID_SOFTMAX_INT8: Mapping[str, Any] = MappingProxyType({"scale": 1.0 / 256.0, "zero_point": -128})
TANH_INT8: Mapping[str, Any] = MappingProxyType({"scale": 2.0 / 256.0, "zero_point": 0})

#: Scales must be positive normal float32 numbers (as QParams stores them).
_F32_TINY, _F32_MAX = float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max)
#: The widest zero points any quantized dtype holds (int16 and uint16).
_ZP_BOUNDS = (-(1 << 15), (1 << 16) - 1)


@register_observer("fixed_qparams")
class FixedQParamsObserver:
    """Parameters ``(scale, zero_point)`` given in the constructor; the data only marks it reached."""

    kind = "fixed_qparams"
    supports_axis = False

    def __init__(self, axis: int | None = None, *, scale: float, zero_point: int) -> None:
        if axis is not None:
            raise ConfigError(f"observer 'fixed_qparams' is per-tensor only, got axis={axis}")
        number = isinstance(scale, (int, float)) and not isinstance(scale, bool)
        if not number or not _F32_TINY <= scale <= _F32_MAX:
            raise ConfigError(
                f"observer 'fixed_qparams': scale must be a finite float32 number of at least "
                f"{_F32_TINY:.4g}, got {scale!r}"
            )
        zp_lo, zp_hi = _ZP_BOUNDS
        if (
            isinstance(zero_point, bool)
            or not isinstance(zero_point, int)
            or not zp_lo <= zero_point <= zp_hi
        ):
            raise ConfigError(
                f"observer 'fixed_qparams': zero_point must be an int in [{zp_lo}, {zp_hi}], "
                f"got {zero_point!r}"
            )
        self.axis = None
        self.scale = float(scale)
        self.zero_point = zero_point
        self._reached = False
        self._nonfinite = 0

    @property
    def reached(self) -> bool:
        return self._reached

    @property
    def nonfinite_count(self) -> int:
        return self._nonfinite

    def update(self, x: np.ndarray) -> None:
        """Count the batch's NaN/Inf values and note whether it had a finite one."""
        lo, hi, bad, _ = finite_min_max(as_float(x))
        self._nonfinite += bad
        self._reached = self._reached or lo <= hi

    def merge(self, other: FixedQParamsObserver) -> FixedQParamsObserver:
        """Reached if either was; the settings must be equal."""
        if type(other) is not FixedQParamsObserver:
            raise TypeError(f"cannot merge {type(other).__name__} into FixedQParamsObserver")
        if (other.scale, other.zero_point) != (self.scale, self.zero_point):
            raise ValueError(
                f"cannot merge fixed_qparams observers of scale/zero point {self.scale}/{self.zero_point} "
                f"and {other.scale}/{other.zero_point}"
            )
        out = FixedQParamsObserver(scale=self.scale, zero_point=self.zero_point)
        out._reached = self._reached or other._reached
        out._nonfinite = self._nonfinite + other._nonfinite
        return out

    def qparams(self, dtype: str, symmetric: bool, reduce_range: bool) -> QParams:
        """The fixed parameters as ``dtype``; a zero point outside its integer range is an error."""
        qmin, qmax = qrange(dtype, symmetric, reduce_range)
        if not qmin <= self.zero_point <= qmax:
            how = "".join((" symmetric" if symmetric else "", " reduce_range" if reduce_range else ""))
            raise ValueError(
                f"observer 'fixed_qparams': zero_point {self.zero_point} is outside the range "
                f"[{qmin}, {qmax}] of {dtype}{how}"
            )
        zp = np.asarray(self.zero_point, dtype=np.int64).astype(qdtype(dtype).numpy)
        return QParams(np.asarray(np.float32(self.scale)), zp)

    def state_dict(self) -> dict[str, Any]:
        return {
            "observer": self.kind,
            "axis": None,
            "scale": self.scale,
            "zero_point": self.zero_point,
            "reached": self._reached,
            "nonfinite": self._nonfinite,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> FixedQParamsObserver:
        """Rebuild an observer from :meth:`state_dict` output; a bad field is a one-line ValueError."""
        check_state_fields(
            cls.kind, state, ("observer", "axis", "scale", "zero_point", "reached", "nonfinite")
        )
        if state["axis"] is not None:
            raise ValueError(f"fixed_qparams observer state: 'axis' must be null, got {state['axis']!r}")
        try:
            obs = cls(scale=state["scale"], zero_point=state["zero_point"])
        except ConfigError as e:
            raise ValueError(f"fixed_qparams observer state: {e}") from None
        if not isinstance(state["reached"], bool):
            raise ValueError(f"'reached' must be true or false, got {state['reached']!r}")
        obs._reached, obs._nonfinite = state["reached"], count_field(state, "nonfinite")
        return obs

    def __repr__(self) -> str:
        return f"FixedQParamsObserver(scale={self.scale}, zero_point={self.zero_point})"
