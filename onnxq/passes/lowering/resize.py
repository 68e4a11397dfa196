"""Nearest Resize of a uint8 tensor → a standard ``Resize`` of its NHWC twin (no Transposes).

Nearest-neighbour resizing copies input elements: each output element is ``x[n, c, h(i), w(j)]``
for index maps ``h``, ``w`` that depend only on the sizes, scales and the
``coordinate_transformation_mode`` / ``nearest_mode`` attributes. A copy commutes with a monotone
quantisation whose qparams are the same on both sides::

    DQ(xq, s, z) → Resize(nearest) → Q(s, z)   ==   Resize(nearest)(xq)      (on the uint8 bytes)

and with the layout: resizing the NHWC twin with the per-axis scales (or sizes) permuted the same
way, ``scales_nhwc[i] = scales_nchw[perm[i]]`` with ``perm = (0, 2, 3, 1)`` (or, with the ``axes``
attribute of opset 18, each listed axis renamed to its NHWC position: C → 3, H → 1, W → 2), picks
the same elements. So the Resize between two of our ops (an FPN's or a YOLO neck's up-sampling)
runs on onnxruntime's uint8 Resize in our layout, and the chain stays NHWC. A Resize on a uint8
tensor one of our ops made (QOperator models resize the integers) is lowered the same way.

Not lowered (the reason is noted): other modes (linear and cubic compute new values, which
onnxruntime's uint8 kernel rounds its own way), ``tf_crop_and_resize`` (the region of interest
would have to be permuted), scales or sizes that are not constants, inputs not known to be 4-D.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxq.graph import constant_array
from onnxq.passes.lowering.common import (
    NCHW_TO_NHWC,
    Lowering,
    State,
    dequantized,
    register,
    same_qparams_io,
)

#: An NCHW axis's position in NHWC.
NHWC_POSITION = {0: 0, 1: 3, 2: 1, 3: 2}


def _four_d(value: ir.Value | None, state: State) -> bool:
    if value is None:
        return False
    if id(value) in state.twins:  # our ops make 4-D NHWC twins only
        return True
    return value.shape is not None and len(value.shape) == 4


def _attributes(node: ir.Node) -> dict[str, int | float | str | list[int]] | str:
    """The Resize's attributes for its NHWC twin (``axes`` renamed), or why it stays."""
    out: dict[str, int | float | str | list[int]] = {}
    for name, attr in node.attributes.items():
        value = attr.value
        out[name] = list(value) if isinstance(value, (list, tuple)) else value
    if out.get("mode", "nearest") != "nearest":
        return f"its mode is {out['mode']!r}: only nearest copies values (others compute new ones)"
    if out.get("coordinate_transformation_mode") == "tf_crop_and_resize":
        return "it crops (tf_crop_and_resize): the region of interest is not lowered"
    if "axes" in out:
        axes = [int(a) % 4 for a in out["axes"]]  # type: ignore[union-attr]
        out["axes"] = [NHWC_POSITION[a] for a in axes]
    return out


@register("", "Resize", noted=True)
def match_resize(node: ir.Node, state: State) -> Lowering | str:
    """A nearest Resize between a DQ and a Q with the same qparams (QDQ), or of a uint8 tensor
    one of our ops made (QOperator): a standard Resize of the NHWC twin (module docstring). A
    Resize of a float tensor is no candidate (""); one of an int8 tensor that stays is noted."""
    x_value = node.inputs[0]
    if x_value is None or (id(x_value) not in state.twins and dequantized(x_value) is None):
        return ""
    if not _four_d(x_value, state):
        return "its input is not known to be 4-D"
    attributes = _attributes(node)
    if isinstance(attributes, str):
        return attributes
    inputs: list[ir.Value | np.ndarray | None] = list(node.inputs[1:])
    # opset 10: (X, scales); later: (X, roi, scales, sizes), an absent or empty one unused
    layout_inputs = [0] if len(node.inputs) == 2 else [i for i in (1, 2) if i < len(inputs)]
    permuted = 0
    for i in layout_inputs:
        value = inputs[i]
        if value is None:
            continue
        array = constant_array(value)  # type: ignore[arg-type]
        if array is None:
            return "its scales or sizes are not constants"
        if array.size == 0:  # opset 11-12 write an empty scales beside sizes
            continue
        if "axes" not in attributes:
            if array.shape != (4,):
                return f"its scales or sizes have shape {list(array.shape)}, not one value per axis"
            array = array[list(NCHW_TO_NHWC)]
        inputs[i] = array
        permuted += 1
    if not permuted:
        return "it has neither scales nor sizes"
    io = same_qparams_io(node, state)
    if isinstance(io, str):
        return io
    x, y, y_q = io
    return Lowering(node, "Resize", (x, *inputs), attributes, y_q, y, domain="")
