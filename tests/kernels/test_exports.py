"""The public names of onnxq.kernels: every family's wrappers re-exported, one object each."""

from __future__ import annotations

import importlib

import pytest

import onnxq.kernels

FAMILY_WRAPPERS = {
    "quant": ("quantize", "dequantize"),
    "gemm": ("pack_gemm_weights", "gemm_u8s8", "gemm_kernel_name"),
    "conv": ("pack_conv_weights", "conv_u8s8_nhwc", "PreparedConv"),
    "eltwise": ("qadd",),
    "pool": ("maxpool", "avgpool", "global_avgpool"),
    "concat": ("qconcat",),
    "dynamic": ("pack_dynamic_weights", "dynamic_matmul", "dynamic_quantize"),
    "rnn": ("pack_lstm_weights", "lstm", "pack_gru_weights", "gru"),
}


def test_all_names_exist_when_listed_once() -> None:
    names = onnxq.kernels.__all__
    assert len(names) == len(set(names))
    missing = [n for n in names if not hasattr(onnxq.kernels, n)]
    assert missing == []


@pytest.mark.parametrize("family", sorted(FAMILY_WRAPPERS))
def test_family_wrappers_reexported_when_listed_in_family_all(family: str) -> None:
    module = importlib.import_module(f"onnxq.kernels.{family}")
    for name in FAMILY_WRAPPERS[family]:
        assert name in module.__all__, f"{family}.{name} not public in its module"
        assert name in onnxq.kernels.__all__, f"{family}.{name} not re-exported"
        assert getattr(onnxq.kernels, name) is getattr(module, name)
