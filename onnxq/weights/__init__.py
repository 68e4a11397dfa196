"""Weights: how constant weights and biases become integers (pure numpy, no graph edits).

* :mod:`~onnxq.weights.registry` — the weight-method registry (``@register_weight_method``) and
  the request/result types a method works with;
* :mod:`~onnxq.weights.rtn` — round to nearest, the built-in method;
* :mod:`~onnxq.weights.gptq` — GPTQ, from the layers' input Hessians (:mod:`~onnxq.weights.hessian`);
* :mod:`~onnxq.weights.adaround` — AdaRound, rounding learned on a sample of each layer's inputs;
* :mod:`~onnxq.weights.bias` — int32 biases on the accumulator's scale;
* :mod:`~onnxq.weights.quantize` — :func:`quantize_weights`: the weight stage of conversion.
"""

from onnxq.weights import adaround as _adaround  # noqa: F401 (registers "adaround")
from onnxq.weights import gptq as _gptq  # noqa: F401 (registers "gptq")
from onnxq.weights import rtn as _rtn  # noqa: F401 (registers "rtn")
from onnxq.weights.quantize import NodeWeights, QuantizedBias, QuantizedWeights, quantize_weights
from onnxq.weights.registry import (
    QuantizedTensor,
    WeightRequest,
    get_weight_method,
    register_weight_method,
    weight_method_names,
)

__all__ = [
    "NodeWeights",
    "QuantizedBias",
    "QuantizedTensor",
    "QuantizedWeights",
    "WeightRequest",
    "get_weight_method",
    "quantize_weights",
    "register_weight_method",
    "weight_method_names",
]
