"""Optional PyTorch integration: export a ``torch.nn.Module`` to ONNX and quantize it with onnxq.

* :func:`export`: either torch exporter, dynamic batch, clear errors;
* :func:`quantize_static` / :func:`quantize_dynamic`: export + onnxq's pipelines in one call;
* :func:`prepare_qat` / :func:`convert_qat`: quantization-aware training placed by onnxq's plan,
  ending in a QDQ ``onnx.ModelProto``.

torch is imported only when a function here is called, so ``import onnxq.torch`` works without it.
"""

from typing import Any

from onnxq.torch.export import ExportError, export
from onnxq.torch.quantize import ModuleQConfigMapping, quantize_dynamic, quantize_static

_QAT_NAMES = ("QatConfig", "QatModule", "convert_qat", "prepare_qat")


def __getattr__(name: str) -> Any:
    if name in _QAT_NAMES:  # lazy: onnxq.torch.qat imports torch
        from onnxq.torch import qat

        return getattr(qat, name)
    raise AttributeError(f"module 'onnxq.torch' has no attribute {name!r}")


__all__ = [
    "ExportError",
    "ModuleQConfigMapping",
    "QatConfig",
    "QatModule",
    "convert_qat",
    "export",
    "prepare_qat",
    "quantize_dynamic",
    "quantize_static",
]
