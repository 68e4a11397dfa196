"""Where the quantized model will run, and the quantization that suits it when none is asked for.

``prepare(model)`` without a qconfig quantizes for a *target* (``--target``, default
``portable``). Every target gets full 8-bit activations (uint8, asymmetric, min/max ranges: at
least as good as onnxruntime's own defaults, which use the same observer), per-channel int8
symmetric weights, and known output ranges (Sigmoid, Softmax, Tanh) only where the observed range
fills them. The one exception is ``x86-avx2``: onnxruntime's and onnxq's AVX2 kernels without VNNI
sum pairs of u8 x s8 products in 16 bits (``vpmaddubsw``), which full-range activations can
saturate, so its activations use ``reduce_range`` (7 bits), as PyTorch's x86 defaults do.

The PyTorch presets (``x86``, ``fbgemm``, ``qnnpack``, ``arm``: :mod:`onnxq.qconfig`) stay
faithful to PyTorch and are what ``--qconfig`` names; a target is not one of them.
"""

from __future__ import annotations

from onnxq.errors import ConfigError
from onnxq.qconfig import PerChannel, QConfig, QConfigMapping, QSpec

TARGETS = ("portable", "onnxruntime", "onnxq", "arm", "x86-avx2")
DEFAULT_TARGET = "portable"


def target_qconfig(target: str = DEFAULT_TARGET) -> QConfig:
    """The default QConfig for ``target`` (see the module docstring)."""
    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r} (expected one of {', '.join(TARGETS)})")
    activation = QSpec("uint8", reduce_range=target == "x86-avx2", observer="minmax")
    weight = QSpec("int8", symmetric=True, granularity=PerChannel(), observer="per_channel_minmax")
    return QConfig(activation, weight, fixed_ranges="when_filled")


def target_mapping(target: str = DEFAULT_TARGET) -> QConfigMapping:
    """The default QConfigMapping for ``target``: its QConfig everywhere."""
    return QConfigMapping(global_qconfig=target_qconfig(target))


def weight_only(mapping: QConfigMapping) -> QConfigMapping:
    """``mapping`` with every QConfig's activations left in float (weights stored quantized)."""

    def change(qc: QConfig | None) -> QConfig | None:
        return None if qc is None else QConfig(None, qc.weight, qc.fixed_ranges)

    return QConfigMapping(
        change(mapping.global_qconfig),
        {k: change(v) for k, v in mapping.op_types.items()},
        {k: change(v) for k, v in mapping.node_names.items()},
        tuple((p, change(v)) for p, v in mapping.node_name_regexes),
    )


__all__ = ["DEFAULT_TARGET", "TARGETS", "target_mapping", "target_qconfig", "weight_only"]
