"""Numpy reference of quantize / dequantize (ONNX QuantizeLinear / DequantizeLinear).

    quantize:   q = clamp_round(float32(x) / scale, qmin - zp, qmax - zp) + zp   (fp32 division)
    dequantize: y = float32(q - zp) * scale                                     (fp32 multiply)

with ``[qmin, qmax]`` the range of the integer type, scale and zero point per tensor or per channel
along ``axis``. NaN quantizes to qmin. The maths is onnxq's one QuantizeLinear,
:func:`onnxq.qparams.quantize_array`, which the quantizer itself uses too.
"""

from __future__ import annotations

from onnxq.qparams import dequantize_array as dequantize
from onnxq.qparams import quantize_array as quantize

__all__ = ["dequantize", "quantize"]
