"""Lowering: a QDQ model (onnxq's, or any tool's) → the same model on onnxq's kernels.

:func:`lower` rewrites what matches onnxq's custom ops (domain ``ai.onnxq``, see
``docs/custom_ops.md``) and leaves the rest QDQ, for onnxruntime's own kernels; the result runs
with :func:`onnxq.runtime.InferenceSession`. Passes, in order: :mod:`onnxq.passes.lower_onnxq`.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
import onnx_ir as ir

from onnxq.errors import OnnxqError
from onnxq.io import load_model, to_proto
from onnxq.kernels.op_schemas import register_op_schemas
from onnxq.passes.lower_onnxq import LowerToOnnxq
from onnxq.passes.shapes import infer_shapes

ModelSource = str | onnx.ModelProto | ir.Model


@dataclass(frozen=True)
class Lowering:
    """A lowered model: ``model`` (checked with ``onnx.checker``, full check: onnxq's ops have
    onnx schemas, :mod:`onnxq.kernels.op_schemas`, and their outputs carry inferred types and
    shapes), how many nodes now run on
    onnxq's ops, and one line per pattern left QDQ with the reason."""

    model: onnx.ModelProto
    lowered: int
    notes: tuple[str, ...]


def lower(model: ModelSource) -> Lowering:
    """Lower ``model`` (a path, ``onnx.ModelProto`` or ``onnx_ir.Model``, not changed) to onnxq's ops."""
    register_op_schemas()  # onnx's checker and shape inference then know onnxq's ops
    ir_model = model.clone() if isinstance(model, ir.Model) else load_model(model)
    infer_shapes(ir_model)  # other tools write no value_info: the elementwise and pooling matches need shapes
    result = LowerToOnnxq()(ir_model)
    infer_shapes(result.model)  # through onnxq's ops: their outputs' types and NHWC shapes
    proto = to_proto(result.model)
    try:
        onnx.checker.check_model(proto, full_check=True, check_custom_domain=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:  # a bug of ours
        raise OnnxqError(f"lowered model fails onnx.checker: {str(e).splitlines()[0]}") from e
    return Lowering(proto, result.count, result.notes)


__all__ = ["Lowering", "lower"]
