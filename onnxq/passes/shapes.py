"""Shape and type inference with onnx's inferencer, merged back into an onnx-ir model.

onnx-ir's ``ShapeInferencePass`` copies an inferred value's element type and shape but not its
kind, so a value onnx infers as ``seq(tensor(float))`` (``SplitToSequence``) or ``optional(...)``
comes back as a plain float tensor, and a model that onnxruntime loaded before no longer loads.
:func:`infer_shapes` takes the whole inferred type instead.

Tensors above :data:`INLINE_BYTES` are left out of what onnx sees (their values are not needed to
infer shapes; the values onnx needs, Reshape's target shape and the like, are small): each becomes
a graph input of its type for the call, and the model is restored as it was afterwards. Failure
is never fatal: the model is left as it was and the reason returned.
"""

from __future__ import annotations

import onnx
import onnx_ir as ir

#: Initializers bigger than this many bytes are not serialised for the inference call.
INLINE_BYTES = 1024


def infer_shapes(model: ir.Model) -> str | None:
    """Merge inferred types and shapes into ``model`` in place; the first line of the reason when
    onnx rejects the model (and then nothing changes), else None."""
    graph = model.graph
    held = [
        v
        for v in graph.initializers.values()
        if v.const_value is not None and v.const_value.nbytes > INLINE_BYTES
    ]
    added = [v for v in held if v not in graph.inputs]
    tensors = {v.name: v.const_value for v in held}
    try:
        for value in held:
            tensor = value.const_value
            assert tensor is not None
            value.shape = value.shape or tensor.shape
            value.dtype = value.dtype or tensor.dtype
            graph.initializers.pop(str(value.name))
            value.const_value = None
        graph.inputs.extend(added)
        proto = ir.serde.serialize_model(model)
    finally:
        for value in added:
            graph.inputs.remove(value)
        for value in held:
            value.const_value = tensors[value.name]
            graph.register_initializer(value)
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
