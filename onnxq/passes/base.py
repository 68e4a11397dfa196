"""What every rewrite pass returns, and the base class a pass derives from.

A pass is an ``onnx_ir`` in-place pass (:class:`onnx_ir.passes.InPlacePass`) built with everything
it needs (config, calibration result, options): called on an :class:`onnx_ir.Model`, it rewrites
the model in place and returns a :class:`PassResult` — the model, how many rewrites it made, and
one-line notes for the report (why a match was refused, what was left alone), each naming the
node or tensor concerned. Being onnx-ir passes, ours compose with the library's own
(``onnx_ir.passes.Sequential``, ``onnx_ir.passes.common``).
"""

from __future__ import annotations

import onnx_ir as ir


class PassResult(ir.passes.PassResult):
    """The outcome of one pass: ``onnx_ir``'s result (``model``, ``modified``) with our counts.

    Attributes:
        model: The rewritten model (the object the pass was given).
        count: Number of rewrites made (0 means the model is unchanged).
        notes: One-line messages for the report, e.g. a match the pass refused and why.
    """

    def __init__(self, model: ir.Model, count: int = 0, notes: tuple[str, ...] = ()) -> None:
        if not isinstance(model, ir.Model):
            raise TypeError(f"PassResult.model must be an onnx_ir.Model, got {type(model).__name__}")
        if count < 0:
            raise ValueError(f"PassResult.count must be >= 0, got {count}")
        if not isinstance(notes, tuple):
            raise TypeError(f"PassResult.notes must be a tuple of str, got {type(notes).__name__}")
        super().__init__(model, count > 0)
        self.count = count
        self.notes = notes

    @property
    def changed(self) -> bool:
        """True when the pass rewrote something."""
        return self.count > 0


class GraphPass(ir.passes.InPlacePass):
    """A rewrite of a model in place. ``name`` is a short identifier used in logs and reports."""

    name: str = "pass"

    def __call__(self, model_or_result: ir.Model | ir.passes.PassResult, /) -> PassResult:
        result = super().__call__(model_or_result)
        assert isinstance(result, PassResult)
        return result


__all__ = ["GraphPass", "PassResult"]
