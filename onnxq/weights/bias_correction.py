"""Empirical bias correction (Nagel et al. 2019), per output channel.

Rounding a weight shifts the mean of its layer's output. For a layer ``y = W x + b`` whose weight
becomes ``Wq`` (dequantized), the expected output moves by::

    E[Wq x] - E[W x] = (Wq - W) E[x]

and subtracting that from the bias, ``b' = b - (Wq - W) E[x]``, removes it. ``E[x]`` is the mean of
the layer's float input over the calibration data, one value per input channel
(:class:`onnxq.accuracy.input_means.ChannelMean`: a streaming sum and count, memory independent
of the number of samples). Per op:

* Conv, weight ``[Cout, Cin/g, k...]``, input channels on axis 1::

      shift[o] = sum_{j, k} (Wq - W)[o, j, k] * E[x][G(o) * Cin/g + j],   G(o) = o div (Cout/g)

  (every kernel position sees the channel's mean: exact away from the zero padding).
* Gemm ``alpha * x B' + beta * C`` (``transA = 0``): ``shift = alpha * E[x] (Bq - B)'`` and
  ``C' = C - shift / beta``.

MatMul has no bias slot, ConvTranspose and a Gemm with ``transA = 1`` are not corrected.

Where it hooks in: :func:`onnxq.weights.quantize.quantize_weights`, at the one place a float bias
becomes int32. A weight method of the registry returns the integer weight only, and the bias
correction needs both that result and the float weight: doing it after the method, on the bias,
makes it work with any method (round to nearest today, AdaRound tomorrow), and the quantized bias
carries the correction with no graph edit. A layer without a bias is given a zero one before
planning (:class:`onnxq.passes.zero_bias.GiveZeroBias`), so every corrected layer has one.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxq.graph import float_attr, int_attr, is_op

#: The ops whose bias is corrected, and the axis of their input's channels.
CORRECTED_INPUT_AXES = {"Conv": 1, "Gemm": 1}


def conv_output_shift(dw: np.ndarray, mean: np.ndarray, groups: int = 1) -> np.ndarray:
    """``shift[o] = sum_{j,k} dw[o, j, k] * mean[G(o) * Cin/g + j]`` for a Conv weight error ``dw``."""
    dw = np.asarray(dw, np.float64)
    cout, cin_g = dw.shape[0], dw.shape[1]
    if cout % groups or np.size(mean) != groups * cin_g:
        raise ValueError(
            f"weight {list(dw.shape)} with {groups} group(s) does not take {np.size(mean)} channels"
        )
    per_tap = dw.reshape(groups, cout // groups, cin_g, -1).sum(axis=-1)
    m = np.asarray(mean, np.float64).reshape(groups, cin_g)
    return np.einsum("goj,gj->go", per_tap, m).reshape(cout)


def gemm_output_shift(dw: np.ndarray, mean: np.ndarray, trans_b: bool, alpha: float = 1.0) -> np.ndarray:
    """``alpha * mean @ dw'`` (``dw'`` = ``dw`` transposed when ``trans_b``)."""
    dw = np.asarray(dw, np.float64)
    m = np.asarray(mean, np.float64)
    return alpha * (dw @ m if trans_b else m @ dw)


def corrected_bias(
    node: ir.Node, bias: np.ndarray, w: np.ndarray, w_deq: np.ndarray, mean: np.ndarray
) -> np.ndarray | None:
    """``node``'s float bias with the output shift of its weight's rounding removed; None when the
    node is not one bias correction applies to."""
    dw = np.asarray(w_deq, np.float64) - np.asarray(w, np.float64)
    b = np.asarray(bias, np.float64)
    if is_op(node, "Conv"):
        shift = conv_output_shift(dw, mean, int_attr(node, "group", 1))
    elif is_op(node, "Gemm") and not int_attr(node, "transA", 0):
        beta = float_attr(node, "beta", 1.0)
        if beta == 0:
            return None
        shift = gemm_output_shift(dw, mean, bool(int_attr(node, "transB", 0)), float_attr(node, "alpha", 1.0))
        shift = shift / beta
    else:
        return None
    return (b - shift.reshape(b.shape)).astype(bias.dtype)


__all__ = ["CORRECTED_INPUT_AXES", "conv_output_shift", "corrected_bias", "gemm_output_shift"]
