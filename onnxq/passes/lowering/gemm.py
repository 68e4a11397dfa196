"""Gemm (+Relu) between Q/DQ, and com.microsoft ``QGemm`` → ``ai.onnxq.QGemm`` (uint8 output).

The pattern::

    aq ─DQ(as, az)→ Gemm(·, DQ(wq, ws, 0), DQ(bq, as·ws, 0)) [→ Relu] ─Q(ys, yz)→ yq

with alpha = beta = 1, no transA, int8 symmetric weights per tensor or per output column, and
an int32 bias, is onnxruntime's fused QGemm::

    acc[m, n] = b[n] + Σ_k (a[m, k] - az) · w[k, n]       (w = wq, or wqᵀ with transB)
    y[m, n]   = clamp(round(acc · as·ws[n]/ys) + yz, qmin, qmax)

with a ReLU as ``qmin = yz``. Matrices need no layout change: the input and output are read and
written as they are (``nhwc=False``). QOperator models write com.microsoft ``QGemm`` (bias before
the output qparams); a QGemm with float output (no ``y_scale``) stays. A Gemm reading a float
input is no candidate; one reading a dequantized input that stays QDQ is noted (a model's last
Gemm whose output was kept float, ``float_outputs=True``, among them).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxq.graph import constant_array
from onnxq.passes.lowering.common import (
    Act,
    Lowering,
    State,
    dequantized,
    qparams,
    register,
    relu_output,
    weighted_inputs,
    weighted_lowering,
)


def _gemm_form(node: ir.Node) -> str | None:
    """Why a Gemm/QGemm is not ``a @ w(.T) + b`` with a plain ``a`` (None when it is)."""
    if node.attributes.get_int("transA", 0) != 0:
        return "transA is set"
    if node.attributes.get_float("alpha", 1.0) != 1.0 or node.attributes.get_float("beta", 1.0) != 1.0:
        return "alpha or beta is not 1"
    return None


def _gemm_weight(
    w_value: ir.Value | None,
    scale_value: ir.Value | None,
    zp_value: ir.Value | None,
    trans_b: int,
    axis: int | None,
) -> np.ndarray | str:
    w = constant_array(w_value)
    if w is None or w.dtype != np.int8 or w.ndim != 2:
        return "its weight is not a constant int8 matrix"
    n = w.shape[0] if trans_b else w.shape[1]
    scale = constant_array(scale_value)
    if scale is None or scale.dtype != np.float32 or scale.size not in (1, n):
        return "its weight scale is not a float32 constant per tensor or per output column"
    if scale.size > 1 and axis is not None and axis % 2 != (0 if trans_b else 1):
        return f"its weight is quantized along axis {axis}, not the output columns"
    zp = constant_array(zp_value) if zp_value is not None else None
    if zp_value is not None and (zp is None or zp.dtype != np.int8 or np.any(zp != 0)):
        return "its weight is not int8 with zero point 0 (symmetric)"
    return w


@register("", "Gemm", noted=True)
def match_gemm(node: ir.Node, state: State) -> Lowering | str:
    """DQ(a) -> Gemm(DQ(w), DQ(b)) [-> Relu] -> Q: ``QGemm`` with uint8 output."""
    if dequantized(node.inputs[0]) is None:  # a float Gemm (or weight-only): no candidate
        return ""
    why = _gemm_form(node)
    if why is not None:
        return why
    found = weighted_inputs(node, "")
    if isinstance(found, str):
        return found
    a_q, a, dq_w = found
    trans_b = node.attributes.get_int("transB", 0)
    w = _gemm_weight(
        dq_w.inputs[0],
        dq_w.inputs[1] if len(dq_w.inputs) > 1 else None,
        dq_w.inputs[2] if len(dq_w.inputs) > 2 else None,
        trans_b,
        dq_w.attributes.get_int("axis", 1),
    )
    if isinstance(w, str):
        return w
    n = w.shape[0] if trans_b else w.shape[1]
    bias_q = None
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        dq_b = dequantized(node.inputs[2])
        b = constant_array(dq_b.inputs[0]) if dq_b is not None else None
        if b is None or b.dtype != np.int32 or b.shape != (n,):
            return "its bias is not a dequantized int32 constant (one per output column)"
        bias_q = dq_b.inputs[0]  # type: ignore[union-attr]
    out = relu_output(node)
    if isinstance(out, str):
        return out
    y, y_q, qmin, qmax = out
    return weighted_lowering(
        node,
        "QGemm",
        Act(a_q, a, nhwc=False),
        dq_w.inputs[0],  # type: ignore[arg-type]
        dq_w.inputs[1],  # type: ignore[arg-type]
        bias_q,
        y,
        y_q,
        {"transB": trans_b, "qmin": qmin, "qmax": qmax},
    )


@register("com.microsoft", "QGemm", noted=True)
def match_qgemm(node: ir.Node, state: State) -> Lowering | str:
    """com.microsoft QGemm (QOperator format) with uint8 output."""
    why = _gemm_form(node)
    if why is not None:
        return why
    ins = list(node.inputs) + [None] * (9 - len(node.inputs))  # A, a_s, a_zp, B, b_s, b_zp, C, y_s, y_zp
    if ins[7] is None:
        return "its output is float (no y_scale)"
    a = qparams(ins[1], ins[2], f"input A of '{node.name}'")
    y = qparams(ins[7], ins[8], f"the output of '{node.name}'")
    if isinstance(a, str) or isinstance(y, str):
        return a if isinstance(a, str) else y  # type: ignore[return-value]
    trans_b = node.attributes.get_int("transB", 0)
    w = _gemm_weight(ins[3], ins[4], ins[5], trans_b, None)
    if isinstance(w, str):
        return w
    n = w.shape[0] if trans_b else w.shape[1]
    b = constant_array(ins[6]) if ins[6] is not None else None
    if ins[6] is not None and (b is None or b.dtype != np.int32 or b.shape != (n,)):
        return "its bias is not an int32 constant (one per output column)"
    assert ins[0] is not None and ins[3] is not None and ins[4] is not None
    attributes: dict[str, int | list[int]] = {"transB": trans_b, "qmin": 0, "qmax": 255}
    a_act = Act(ins[0], a, nhwc=False)
    return weighted_lowering(node, "QGemm", a_act, ins[3], ins[4], ins[6], y, node.outputs[0], attributes)
