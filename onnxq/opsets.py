"""The ai.onnx opsets the QDQ format needs.

* :data:`MIN_OPSET` (13): per-channel QuantizeLinear/DequantizeLinear (the ``axis`` attribute).
  Older models are upgraded to it before anything else.
* :data:`BLOCK_OPSET` (21): 4-bit and 16-bit QuantizeLinear/DequantizeLinear, and per-block
  scales (the ``block_size`` attribute). A configuration that uses either makes the model's opset
  at least this.
"""

from __future__ import annotations

MIN_OPSET = 13
BLOCK_OPSET = 21

#: Quantized dtypes that QuantizeLinear/DequantizeLinear accept from :data:`MIN_OPSET` on.
MIN_OPSET_DTYPES = frozenset({"int8", "uint8"})


def qdq_opset(dtype: str, block: bool = False) -> int:
    """The opset a Q/DQ pair of ``dtype`` (per-block when ``block``) needs."""
    return MIN_OPSET if dtype in MIN_OPSET_DTYPES and not block else BLOCK_OPSET


__all__ = ["BLOCK_OPSET", "MIN_OPSET", "MIN_OPSET_DTYPES", "qdq_opset"]
