"""onnxq: export-and-quantize for ONNX models.

Static post-training quantization to portable int8 QDQ ONNX, the same flow as PyTorch's
``prepare`` / calibrate / ``convert``::

    import onnxq

    prepared = onnxq.prepare("model.onnx", onnxq.get_default_qconfig("x86"))
    prepared.calibrate(batches)              # {input_name: ndarray} dicts, tuples, a DataLoader,
                                             # or onnxq.load_calibration_data("calib/")
    qmodel = prepared.convert()              # onnx.ModelProto in QDQ format
    onnxq.save_model(qmodel, "model.int8.onnx")

    qmodel = onnxq.quantize_static("model.onnx", batches, qconfig="x86")   # in one call
    qmodel = onnxq.quantize_dynamic("encoder.onnx")    # dynamic: no calibration data
    qmodel = onnxq.quantize_weight_only("decoder.onnx", "int4", 32)   # weight-only, data-free

Everything public is listed in ``__all__``; anything else is internal.
"""

from onnxq import errors
from onnxq.accuracy.fallback import BudgetResult, quantize_with_budget
from onnxq.api import Conversion, PreparedModel, convert, prepare, quantize_static, smooth_quant
from onnxq.api_dynamic import DynamicConversion, convert_dynamic, quantize_dynamic
from onnxq.api_weight_only import WeightOnlyConversion, convert_weight_only, quantize_weight_only
from onnxq.calibration.images import ImageFolder
from onnxq.calibration.preprocess import ImagePreprocess
from onnxq.calibration.result import CalibrationResult
from onnxq.calibration.sources import load_calibration_data
from onnxq.errors import (
    CalibrationDataError,
    ConfigError,
    ModelLoadError,
    OnnxqError,
    UnsupportedModelError,
)
from onnxq.inspect import ModelSummary, format_summary, inspect_model
from onnxq.io import load_model, save_model
from onnxq.qconfig import QConfig, QConfigMapping, QSpec, get_default_qconfig
from onnxq.report import QuantizationReport
from onnxq.scheme import PerBlock, PerChannel, PerTensor
from onnxq.weights import QuantizedTensor, WeightRequest, register_weight_method


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("onnxq")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "0+unknown"


__version__ = _version()

__all__ = [
    "BudgetResult",
    "CalibrationDataError",
    "CalibrationResult",
    "ConfigError",
    "Conversion",
    "DynamicConversion",
    "ImageFolder",
    "ImagePreprocess",
    "ModelLoadError",
    "ModelSummary",
    "OnnxqError",
    "PerBlock",
    "PerChannel",
    "PerTensor",
    "PreparedModel",
    "QConfig",
    "QConfigMapping",
    "QSpec",
    "QuantizationReport",
    "QuantizedTensor",
    "UnsupportedModelError",
    "WeightOnlyConversion",
    "WeightRequest",
    "__version__",
    "convert",
    "convert_dynamic",
    "convert_weight_only",
    "errors",
    "format_summary",
    "get_default_qconfig",
    "inspect_model",
    "load_calibration_data",
    "load_model",
    "prepare",
    "quantize_dynamic",
    "quantize_static",
    "quantize_weight_only",
    "quantize_with_budget",
    "register_weight_method",
    "save_model",
    "smooth_quant",
]
