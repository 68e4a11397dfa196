"""Where the quantized model will run, and the quantization that suits it when none is asked for.

``prepare(model)`` without a qconfig quantizes for a *target* (``--target``, default
``portable``). Every target gets full 8-bit activations (uint8, asymmetric, min/max ranges: at
least as good as onnxruntime's own defaults, which use the same observer), per-channel int8
symmetric weights, and known output ranges (Sigmoid, Softmax, Tanh) only where the observed range
fills them. On ``x86-avx2`` onnxruntime's AVX2 kernels without VNNI sum pairs of u8 x s8
products in 16 bits (``vpmaddubsw``), which full-range activations can saturate: its
calibration keeps each activation's per-channel maxima (the ``channel_minmax`` observer, the
same per-tensor parameters as ``minmax``) and a saturation audit gives 7-bit inputs
(``reduce_range``) to the layers that could saturate, and only to them
(:mod:`onnxq.accuracy.saturation`) — PyTorch's x86 presets put every layer at 7 bits.

The PyTorch presets (``x86``, ``fbgemm``, ``qnnpack``, ``arm``: :mod:`onnxq.qconfig`) stay
faithful to PyTorch and are what ``--qconfig`` names; a target is not one of them.
"""

from __future__ import annotations

from onnxq.errors import ConfigError
from onnxq.qconfig import PerChannel, QConfig, QConfigMapping, QSpec

TARGETS = ("portable", "onnxruntime", "onnxq", "arm", "x86-avx2")
DEFAULT_TARGET = "portable"
#: Targets whose kernels can saturate on 8-bit inputs: conversion audits every layer.
AUDITED_TARGETS = frozenset({"x86-avx2"})


def target_qconfig(target: str = DEFAULT_TARGET) -> QConfig:
    """The default QConfig for ``target`` (see the module docstring)."""
    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r} (expected one of {', '.join(TARGETS)})")
    observer = "channel_minmax" if target in AUDITED_TARGETS else "minmax"
    activation = QSpec("uint8", observer=observer)
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


__all__ = ["AUDITED_TARGETS", "DEFAULT_TARGET", "TARGETS", "target_mapping", "target_qconfig", "weight_only"]
