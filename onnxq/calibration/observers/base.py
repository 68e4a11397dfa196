"""The observer protocol and the registry that configs refer to by name.

An observer accumulates statistics of one tensor over calibration batches in memory that does not
grow with the number of samples (``update``), can be combined with another observer of the same
kind that saw other data (``merge``: shards, parallel calibration), and turns its statistics into
quantization parameters (``qparams``) through the pure functions of :mod:`onnxq.qparams`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from onnxq.qparams import QParams


@runtime_checkable
class Observer(Protocol):
    """Statistics of one tensor. ``axis`` is the channel axis of per-channel observers; a class
    that can keep ranges per channel says so with a ``supports_axis = True`` class attribute."""

    def update(self, x: np.ndarray) -> None: ...

    def merge(self, other: Observer) -> Observer: ...

    def qparams(self, dtype: str, symmetric: bool, reduce_range: bool) -> QParams: ...

    def state_dict(self) -> dict[str, Any]: ...

    @property
    def reached(self) -> bool:
        """True once at least one finite value was observed."""
        ...

    @property
    def nonfinite_count(self) -> int:
        """How many NaN/Inf values were ignored."""
        ...


ObserverFactory = Callable[..., Observer]
_REGISTRY: dict[str, ObserverFactory] = {}
T = TypeVar("T")


def register_observer(name: str) -> Callable[[T], T]:
    """Class decorator: make an observer class available to configs under ``name``."""

    def deco(cls: T) -> T:
        if name in _REGISTRY:
            raise ValueError(f"observer {name!r} registered twice")
        _REGISTRY[name] = cls  # type: ignore[assignment]
        return cls

    return deco


def observer_names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def observer_supports_axis(name: str) -> bool:
    """Whether the observer registered as ``name`` keeps ranges per channel (its ``supports_axis``)."""
    return bool(getattr(_REGISTRY[name], "supports_axis", False))


def make_observer(name: str, axis: int | None = None, **kwargs: Any) -> Observer:
    """Instantiate the observer registered as ``name``."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown observer {name!r} (known: {', '.join(observer_names())})") from None
    return factory(axis=axis, **kwargs)


def check_observer_args(name: str, args: Mapping[str, Any], per_channel: bool) -> None:
    """Raise a one-line :class:`~onnxq.errors.ConfigError` unless ``make_observer(name, axis,
    **args)`` accepts ``args``: names its constructor takes (``axis`` is the spec's granularity,
    not an argument), values in the bounds it checks. The observer is built once and dropped."""
    from onnxq.errors import ConfigError

    factory = _REGISTRY[name]
    accepted = [p for p in inspect.signature(factory).parameters if p not in ("self", "axis")]
    unknown = sorted(str(k) for k in args if k not in accepted)
    if unknown:
        takes = ", ".join(accepted) if accepted else "no arguments"
        raise ConfigError(
            f"observer {name!r} has no argument {', '.join(map(repr, unknown))} (it takes {takes})"
        )
    try:
        factory(axis=0 if per_channel else None, **args)
    except ConfigError:
        raise
    except (TypeError, ValueError, OverflowError, MemoryError) as e:
        raise ConfigError(f"observer {name!r}: {e}") from None


def observer_from_state(state: dict[str, Any]) -> Observer:
    """Rebuild an observer from its ``state_dict()``; the ``"observer"`` key names the kind."""
    name = state.get("observer") if isinstance(state, dict) else None
    if not isinstance(name, str) or name not in _REGISTRY:
        known = ", ".join(observer_names())
        raise KeyError(f"observer state names unknown observer {name!r} (known: {known})")
    return _REGISTRY[name].from_state_dict(state)  # type: ignore[attr-defined,no-any-return]
