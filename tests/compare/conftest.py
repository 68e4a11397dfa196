"""The digits ResNet-style CNN that ships with onnxq, quantized by onnxq and by onnxruntime."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest

import onnxq

CALIB_SAMPLES = 32


class _Reader:
    """onnxruntime's calibration reader protocol over one array of samples."""

    def __init__(self, x: np.ndarray) -> None:
        self._it = iter([{"input": x[i : i + 1]} for i in range(len(x))])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


@pytest.fixture(scope="session")
def digits_qdq(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, Path, Path]]:
    """``digits_qdq(tool)``: (fp32 model, its QDQ model by ``tool`` "onnxq" or "onnxruntime",
    calibration .npz), made once."""
    from onnxq.demo import asset_path

    root = tmp_path_factory.mktemp("compare-digits")
    fp32, calib = root / "model.onnx", root / "calib.npz"
    x = np.load(asset_path("digits_calib.npz"))["input"][:CALIB_SAMPLES]
    fp32.write_bytes(Path(asset_path("digits_cnn.onnx")).read_bytes())
    np.savez(calib, input=x)
    made: dict[str, Path] = {}

    def get(tool: str) -> tuple[Path, Path, Path]:
        if tool not in made:
            out = root / f"model.{tool}.onnx"
            if tool == "onnxq":
                onnx.save(onnxq.quantize_static(fp32, [{"input": x}], progress=False), out)
            else:
                ort_quant = pytest.importorskip("onnxruntime.quantization")
                ort_quant.quantize_static(
                    str(fp32), str(out), _Reader(x), quant_format=ort_quant.QuantFormat.QDQ
                )
            made[tool] = out
        return fp32, made[tool], calib

    return get
