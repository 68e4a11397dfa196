"""The weight-method registry: how a float weight becomes integers, by name.

A weight method is a function ``(WeightRequest) -> QuantizedTensor`` registered with
:func:`register_weight_method`; ``quantize_weights(..., method=name)`` calls it once per distinct
weight. Round-to-nearest (``rtn``) is the built-in; methods that change how weights are rounded
(bias correction, AdaRound, GPTQ) are registered the same way and may use what the request
carries besides the weight: the node, its op, and the parameters of its quantized input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from onnxq.errors import ConfigError
from onnxq.qconfig import QSpec
from onnxq.qparams import QParams
from onnxq.scheme import Granularity


@dataclass(frozen=True, eq=False)
class WeightRequest:
    """Everything a weight method may use for one weight.

    Attributes:
        node: The name of (the first) node reading the weight.
        op_type: Its op type.
        weight: The float32 weight.
        spec: The weight's QSpec (dtype, symmetric, observer...).
        granularity: The granularity with its axis resolved for this node.
        input_qparams: The parameters of the node's quantized activation input (None when the
            activations stay float).
        hessian: For methods that use data (``gptq``): ``H = 2 X^T X / rows`` of the node's
            input rows ``X`` (float64, ``[K, K]`` over the weight's reduction axis), or None.
        inputs: A sample of the node's input rows as its matmul sees them (``[N, K]``: a Conv's
            patches, a Gemm/MatMul's rows), for methods that learn from data (``adaround``);
            None unless calibration kept them (:mod:`onnxq.accuracy.layer_inputs`).
        trans_b: For a Gemm, its ``transB`` (the weight is ``[N, K]``).
        mse_scales: Choose each block's (channel's) scale by least squared rounding error over
            clipping ratios (:mod:`onnxq.weights.clip_search`) instead of its min-max range, for
            the methods that support it (``rtn``, ``gptq``).
    """

    node: str
    op_type: str
    weight: np.ndarray
    spec: QSpec
    granularity: Granularity
    input_qparams: QParams | None = None
    hessian: np.ndarray | None = None
    inputs: np.ndarray | None = None
    trans_b: bool = False
    mse_scales: bool = False


@dataclass(frozen=True, eq=False)
class QuantizedTensor:
    """Integer values (in the spec's dtype; ``ml_dtypes`` for 4 bits) and their parameters."""

    values: np.ndarray
    qparams: QParams

    def __post_init__(self) -> None:
        if str(self.values.dtype) != self.qparams.dtype:
            raise ValueError(f"values are {self.values.dtype}, qparams {self.qparams.dtype}")


WeightMethod = Callable[..., QuantizedTensor]
_REGISTRY: dict[str, WeightMethod] = {}
#: The settings type of each method that takes settings (``method(request, config)``).
_CONFIGS: dict[str, type] = {}
#: What each data-driven method learns from: "hessian" (the layers' input Hessians, which
#: weight-only mode gathers) or "inputs" (samples of the layers' inputs, which static mode keeps).
_DATA: dict[str, str] = {}
DATA_KINDS = ("hessian", "inputs")


def register_weight_method(
    name: str, *, needs_data: bool = False, data: str | None = None, config: type | None = None
) -> Callable[[WeightMethod], WeightMethod]:
    """Decorator: make a weight method available as ``method=name``; a name is registered once.
    ``data``: what the method learns from (:data:`DATA_KINDS`); ``needs_data=True`` is
    ``data="hessian"``. ``config``: the type of the method's settings (a frozen dataclass); the
    method is then called as ``method(request, settings)`` (:func:`weight_method_call`)."""
    kind = "hessian" if needs_data and data is None else data
    if kind is not None and kind not in DATA_KINDS:
        raise ValueError(f"weight method {name!r}: data {kind!r} is not one of {DATA_KINDS}")

    def deco(fn: WeightMethod) -> WeightMethod:
        if name in _REGISTRY:
            raise ValueError(f"weight method {name!r} registered twice")
        _REGISTRY[name] = fn
        if config is not None:
            _CONFIGS[name] = config
        if kind is not None:
            _DATA[name] = kind
        return fn

    return deco


def weight_method_data(name: str) -> str | None:
    """What the method ``name`` learns from (:data:`DATA_KINDS`), None for a data-free one."""
    get_weight_method(name)
    return _DATA.get(name)


def weight_method_needs_data(name: str) -> bool:
    """Whether the method ``name`` needs calibration data (the layers' input Hessians)."""
    return weight_method_data(name) == "hessian"


def weight_method_names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def get_weight_method(name: str) -> WeightMethod:
    """The method registered as ``name``; a :class:`ConfigError` naming the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(weight_method_names())
        raise ConfigError(f"unknown weight method {name!r} (known: {known})") from None


def weight_method_call(name: str, config: object | None = None) -> Callable[[WeightRequest], QuantizedTensor]:
    """The method ``name`` as a call on one request, with ``config`` (default: the method's
    default settings); a :class:`ConfigError` when ``config`` is not the method's settings type."""
    fn = get_weight_method(name)
    kind = _CONFIGS.get(name)
    if config is None:
        return fn
    if kind is None:
        raise ConfigError(f"weight method {name!r} takes no settings (got {type(config).__name__})")
    if not isinstance(config, kind):
        raise ConfigError(
            f"weight method {name!r} takes {kind.__name__} settings, got {type(config).__name__}"
        )
    return lambda request: fn(request, config)


__all__ = [
    "QuantizedTensor",
    "WeightMethod",
    "WeightRequest",
    "get_weight_method",
    "register_weight_method",
    "weight_method_call",
    "weight_method_data",
    "weight_method_names",
    "weight_method_needs_data",
]
