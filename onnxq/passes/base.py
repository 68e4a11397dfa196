"""What every rewrite pass returns, and the protocol a pass follows.

A pass is an object built with everything it needs (config, calibration result, options) and
called on an :class:`onnx_ir.Model`. It rewrites the model in place and returns a
:class:`PassResult`: the model, how many rewrites it made, and one-line notes for the report
(why a match was refused, what was left alone), each naming the node or tensor concerned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import onnx_ir as ir


@dataclass(frozen=True)
class PassResult:
    """The outcome of one pass.

    Attributes:
        model: The rewritten model: usually the object the pass was given (rewritten in place), a new
            one when the pass had to rebuild it (opset upgrade). Always continue with this one.
        count: Number of rewrites made (0 means the model is unchanged).
        notes: One-line messages for the report, e.g. a match the pass refused and why.
    """

    model: ir.Model
    count: int
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.model, ir.Model):
            raise TypeError(f"PassResult.model must be an onnx_ir.Model, got {type(self.model).__name__}")
        if self.count < 0:
            raise ValueError(f"PassResult.count must be >= 0, got {self.count}")
        if not isinstance(self.notes, tuple):
            raise TypeError(f"PassResult.notes must be a tuple of str, got {type(self.notes).__name__}")

    @property
    def changed(self) -> bool:
        """True when the pass rewrote something."""
        return self.count > 0


@runtime_checkable
class GraphPass(Protocol):
    """A rewrite of a model. ``name`` is a short identifier used in logs and reports."""

    name: str

    def __call__(self, model: ir.Model) -> PassResult: ...


__all__ = ["GraphPass", "PassResult"]
