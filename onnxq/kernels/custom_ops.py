"""onnxq's kernels as onnxruntime custom ops: where the shared object is, and the domain.

The compiled kernel module (``onnxq.kernels._native``) is also an onnxruntime custom-op
library: it exports ``RegisterCustomOps``, which onnxruntime calls when
``SessionOptions.register_custom_ops_library(library_path())`` names it, and which adds the ops
of the :data:`DOMAIN` domain (opset :data:`OPSET`) to the session. The C side is
``native/src/ort/``; the ops are documented in ``docs/custom_ops.md``.
"""

from __future__ import annotations

from pathlib import Path

#: The domain of onnxq's ops and its opset version.
DOMAIN = "ai.onnxq"
OPSET = 1
#: onnxruntime releases before this have too old a C API for the ops (registration fails).
MIN_ONNXRUNTIME = (1, 18)


def library_path() -> str:
    """Path of the shared object to give ``SessionOptions.register_custom_ops_library``."""
    from onnxq.kernels import _native

    path = Path(_native.__file__ or "").resolve()
    return str(path)
