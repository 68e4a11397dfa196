"""Shape and type inference with onnx's inferencer, merged back into an onnx-ir model.

onnx-ir's ``ShapeInferencePass`` copies an inferred value's element type and shape but not its
kind, so a value onnx infers as ``seq(tensor(float))`` (``SplitToSequence``) or ``optional(...)``
comes back as a plain float tensor, and a model that onnxruntime loaded before no longer loads.
:func:`infer_shapes` takes the whole inferred type instead.

Tensors above :data:`INLINE_BYTES` are left out of what onnx sees
(:func:`onnxq.passes.weightless.weights_as_inputs`: their values are not needed to infer shapes),
so a model over protobuf's 2 GB limit is inferred too. Failure
is never fatal: the model is left as it was and the reason returned.
"""

from __future__ import annotations

import onnx
import onnx_ir as ir

from onnxq.passes.weightless import INLINE_BYTES, weights_as_inputs


def infer_shapes(model: ir.Model) -> str | None:
    """Merge inferred types and shapes into ``model`` in place; the first line of the reason when
    onnx rejects the model (and then nothing changes), else None."""
    with weights_as_inputs(model) as held:
        proto = held.serialize()
    try:
        inferred = ir.serde.deserialize_model(
            onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=False, data_prop=True)
        )
    except Exception as exc:  # onnx raises InferenceError, ValidationError, RuntimeError...
        text = str(exc).strip().splitlines()
        return text[0] if text else type(exc).__name__
    for original, result in zip(model.graphs(), inferred.graphs(), strict=False):
        found = ir.convenience.create_value_mapping(result)
        for name, value in ir.convenience.create_value_mapping(original).items():
            other = found.get(name)
            if other is None or value.const_value is not None:
                continue
            if other.type is not None and value.type != other.type:
                value.type = other.type
            if other.shape is not None and value.shape != other.shape:
                value.shape = other.shape
    return None


__all__ = ["INLINE_BYTES", "infer_shapes"]
