"""What the Python API accepts: models, qconfigs and calibration batches (type aliases only)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Union

import onnx
import onnx_ir as ir

from onnxq.qconfig import QConfig, QConfigMapping

ModelSource = Union[str, "os.PathLike[str]", onnx.ModelProto, ir.Model]
QConfigLike = Union[str, "os.PathLike[str]", QConfig, QConfigMapping, None]
#: What calibration takes (:mod:`onnxq.calibration.adapters`): ``{input name: array}`` dicts, tuples
#: of arrays or tensors in input order (a ``DataLoader``'s ``(x, y)``: labels ignored), bare arrays
#: for a one-input model, or a source of :mod:`onnxq.calibration.sources` (files, image folders).
Batches = Iterable[Any]

__all__ = ["Batches", "ModelSource", "QConfigLike"]
