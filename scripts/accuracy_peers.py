"""The peers the accuracy benchmarks run beside onnxq, on the same calibration batches.

- :func:`ort_quantize`: ``onnxruntime.quantization.quantize_static`` (QDQ format), its progress
  printing silenced; :func:`ort_settings` the settings tried for its best result.
- :func:`nncf_quantize`: ``nncf.quantize`` (ONNX backend), when NNCF is importable. NNCF is never
  a dependency of onnxq: install it for the benchmark only (``pip install nncf``, or
  ``pip install --target DIR nncf`` and ``PYTHONPATH=DIR``).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import onnx


def ort_quantize(model_path: Path, out: Path, batches: list[dict[str, np.ndarray]], **kwargs: Any) -> Path:
    """``quantize_static(model_path, out, <batches>, **kwargs)``; returns ``out``."""
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    with contextlib.redirect_stdout(io.StringIO()):  # its calibrators print progress
        quantize_static(str(model_path), str(out), Reader(), **kwargs)
    return out


def ort_settings(per_channel: bool = True) -> dict[str, dict[str, Any]]:
    """The settings whose best is "onnxruntime's best": MinMax, Percentile and Entropy calibration
    with per-channel weights (per-tensor when ``per_channel`` is False)."""
    from onnxruntime.quantization import CalibrationMethod

    granularity = "per-channel" if per_channel else "per-tensor"
    return {
        f"{granularity} {method.name}": {"per_channel": per_channel, "calibrate_method": method}
        for method in (CalibrationMethod.MinMax, CalibrationMethod.Percentile, CalibrationMethod.Entropy)
    }


def nncf_available() -> bool:
    try:
        import nncf  # noqa: F401
    except ImportError:
        return False
    return True


def nncf_quantize(
    model: onnx.ModelProto,
    batches: list[dict[str, np.ndarray]],
    per_channel: bool | None = None,
    fast_bias_correction: bool = True,
) -> onnx.ModelProto:
    """``nncf.quantize`` on the calibration batches, one batch a run (its default settings: the
    mixed preset, fast bias correction); ``per_channel=False`` asks for per-tensor weights,
    ``fast_bias_correction=False`` turns its bias correction off (on the digits MobileNetV2 it
    takes NNCF's output SQNR from 22.7 to 33.8 dB)."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, QuantizationParameters

    options: dict[str, Any] = {}
    if per_channel is not None:
        params = QuantizationParameters(per_channel=per_channel)
        options["advanced_parameters"] = AdvancedQuantizationParameters(weights_quantization_params=params)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return nncf.quantize(model, nncf.Dataset(batches), subset_size=len(batches),
                             fast_bias_correction=fast_bias_correction, **options)  # fmt: skip


__all__ = ["nncf_available", "nncf_quantize", "ort_quantize", "ort_settings"]
