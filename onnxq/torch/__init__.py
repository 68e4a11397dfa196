"""Optional PyTorch integration: export a ``torch.nn.Module`` to ONNX for quantization.

torch is imported only when a function here is called, so ``import onnxq.torch`` works without it.
"""

from onnxq.torch.export import ExportError, export

__all__ = ["ExportError", "export"]
