"""A model's large constants held out of what onnx's C++ tools see (shape inference, the opset
version converter).

Those tools take one serialised ``ModelProto``, which protobuf caps at 2 GB and which copies every
weight in memory. Their answers never depend on large tensors' values (the values they read,
Reshape's target shape, Resize's scales, Split's sizes, are small), so within
:func:`weights_as_inputs` every initializer above :data:`INLINE_BYTES` is a graph input of its type
and shape with no value, and :meth:`HeldWeights.serialize` gives a proto without their data. On
exit the model is restored as it was; :meth:`HeldWeights.restore_into` gives the held tensors
(external data stays memory-mapped, never read) to a model rebuilt from a converted proto.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import onnx
import onnx_ir as ir

from onnxq.errors import OnnxqError
from onnxq.io import to_proto

#: Initializers bigger than this many bytes are not serialised for onnx's C++ tools.
INLINE_BYTES = 1024


@dataclass(frozen=True)
class HeldWeights:
    """The initializers held out of ``model`` (by name) and which of them were not graph inputs."""

    model: ir.Model
    tensors: dict[str, ir.TensorProtocol]
    added_inputs: frozenset[str]

    def serialize(self) -> onnx.ModelProto:
        """The model without the held tensors' data (they are value-less graph inputs); the small
        external tensors left, in subgraphs too, are read in (:func:`onnxq.io.to_proto`)."""
        return to_proto(self.model)

    def restore_into(self, other: ir.Model) -> None:
        """Give the held tensors back to ``other``, a model rebuilt from :meth:`serialize`'s proto
        (converted): each becomes an initializer again, and an input only if it was one before.

        Raises:
            OnnxqError: ``other`` lost one of the held values (a converter that renamed it).
        """
        graph = other.graph
        inputs = {str(v.name): v for v in graph.inputs}
        for name, tensor in self.tensors.items():
            value = inputs.get(name)
            if value is None:
                raise OnnxqError(f"weight '{name}' is missing from the converted model's inputs")
            if name in self.added_inputs:
                graph.inputs.remove(value)
            value.const_value = tensor
            graph.register_initializer(value)


@contextmanager
def weights_as_inputs(model: ir.Model) -> Iterator[HeldWeights]:
    """Within the block, ``model``'s main-graph initializers above :data:`INLINE_BYTES` are graph
    inputs without values; restored on exit (whatever happens inside)."""
    graph = model.graph
    held = [
        v
        for v in graph.initializers.values()
        if v.const_value is not None and v.const_value.nbytes > INLINE_BYTES
    ]
    added = [v for v in held if v not in graph.inputs]
    tensors = {str(v.name): v.const_value for v in held}
    try:
        for value in held:
            tensor = value.const_value
            assert tensor is not None
            value.shape = value.shape or tensor.shape
            value.dtype = value.dtype or tensor.dtype
            graph.initializers.pop(str(value.name))
            value.const_value = None
        graph.inputs.extend(added)
        yield HeldWeights(model, tensors, frozenset(str(v.name) for v in added))  # type: ignore[arg-type]
    finally:
        for value in added:
            graph.inputs.remove(value)
        for value in held:
            value.const_value = tensors[str(value.name)]
            graph.register_initializer(value)


def check_model(model: ir.Model) -> None:
    """``onnx.checker.check_model`` on ``model`` with its large weights held out: any size, and
    without a copy of the weights (the checker only compares a tensor's data with its shape, which
    onnx-ir's tensors keep consistent).

    Raises:
        onnx.checker.ValidationError: As the checker does.
    """
    with weights_as_inputs(model) as held:
        proto = held.serialize()
    onnx.checker.check_model(proto)


__all__ = ["INLINE_BYTES", "HeldWeights", "check_model", "weights_as_inputs"]
