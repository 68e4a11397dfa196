"""The matchers of the lowering to onnxq's ops, one op family per module.

Each module registers its matchers with :func:`onnxq.passes.lowering.common.register`; importing
it is what adds them to :data:`MATCHERS`, so every family is imported here by name (a new family
is a new module and one line below). :class:`onnxq.passes.lower_onnxq.LowerToOnnxq` looks a node's
matcher up by ``(domain, op type)``.
"""

from __future__ import annotations

from onnxq.passes.lowering import add, concat, conv, flatten, gemm, pool, resize  # noqa: F401  (they register)
from onnxq.passes.lowering.common import MATCHERS, Registered

__all__ = ["MATCHERS", "Registered"]
