"""Dynamic quantization, the Python API: weights 8-bit ahead of time, activations quantized at
run time (no calibration data).

``quantize_dynamic(model, op_types, ...)`` returns the model; ``convert_dynamic`` the model, the
plan (:mod:`onnxq.planning.dynamic`) and the report. The model goes through the same structural
passes as for static quantization, then the dynamic passes the plan asks for
(:func:`onnxq.passes.dynamic_passes`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import onnx

from onnxq.api import CHECKER_MAX_BYTES, ModelSource, QConfigLike, structurally_prepared
from onnxq.errors import ConfigError, OnnxqError, enum_member
from onnxq.graph import remove_unused_initializers
from onnxq.io import tensor_bytes, to_proto
from onnxq.kernels.op_schemas import register_op_schemas
from onnxq.opsets import MIN_OPSET
from onnxq.passes import dynamic_passes, run_passes
from onnxq.passes.uint8_twin import uint8_twin
from onnxq.planning.dynamic import DynamicFormat, DynamicPlan, build_dynamic_plan, check_op_types
from onnxq.qconfig import resolve_qconfig
from onnxq.report import QuantizationReport, build_dynamic_report

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DynamicConversion:
    """A dynamic quantization: the model (checked with ``onnx.checker``), the plan applied, the report."""

    model: onnx.ModelProto
    plan: DynamicPlan
    report: QuantizationReport


def convert_dynamic(
    model: ModelSource,
    op_types: Iterable[str] | None = None,
    *,
    weight_dtype: str = "int8",
    per_channel: bool = True,
    format: str = "qdq",
    qconfig_mapping: QConfigLike = None,
    reduce_range: bool | None = None,
) -> DynamicConversion:
    """:func:`quantize_dynamic` (see its arguments) with every stage kept: the model, the plan and
    the report."""
    fmt = dynamic_format(format)
    if weight_dtype not in ("int8", "uint8"):
        raise ConfigError(f"weight_dtype must be 'int8' or 'uint8', got {weight_dtype!r}")
    if weight_dtype == "uint8" and fmt is DynamicFormat.ONNXQ:
        raise ConfigError(
            "weight_dtype 'uint8' is for onnxruntime's saturating kernels; format 'onnxq' runs int8 "
            "weights on onnxq's kernels, exact on every CPU"
        )
    if reduce_range is not None and not isinstance(reduce_range, bool):
        raise ConfigError(f"reduce_range must be True, False or None, got {reduce_range!r}")
    if reduce_range is None and qconfig_mapping is None:
        reduce_range = True  # the default (quantize_dynamic's docstring says why)
    if isinstance(qconfig_mapping, os.PathLike):
        qconfig_mapping = os.fspath(qconfig_mapping)
    mapping = (
        resolve_qconfig(qconfig_mapping)
        if qconfig_mapping is not None
        else resolve_qconfig("per_channel_dynamic" if per_channel else "dynamic")
    )
    chosen = check_op_types(op_types)
    ir_model, source_op_types, notes = structurally_prepared(model, MIN_OPSET, requantize=False)
    plan = build_dynamic_plan(ir_model.graph, mapping, chosen, fmt, source_op_types, reduce_range)
    ir_model, results = run_passes(ir_model, dynamic_passes(plan))
    remove_unused_initializers(ir_model.graph)
    proto = to_proto(ir_model)
    if weight_dtype == "uint8":
        proto = uint8_twin(proto)
    # no intermediate shapes: onnxruntime infers its own; given every one (as the structural passes'
    # and the twin's shape inference leave them), it fuses LayerNormalization into
    # SkipLayerNormalization, which ran slower (an encoder, 1 thread: 5.2 ms instead of 4.6,
    # scripts/bench_dynamic.py)
    del proto.graph.value_info[:]
    if fmt is DynamicFormat.ONNXQ:
        register_op_schemas()  # the checker then knows ai.onnxq.DynamicMatMul
    if tensor_bytes(ir_model) < CHECKER_MAX_BYTES:
        try:
            onnx.checker.check_model(proto)
        except onnx.checker.ValidationError as e:  # a bug of ours, not bad input
            raise OnnxqError(f"quantized model fails onnx.checker: {str(e).splitlines()[0]}") from e
    report = build_dynamic_report(plan, (*notes, *(note for r in results for note in r.notes)))
    logger.info("dynamic: %d of %d nodes quantized", len(report.quantized), len(report.nodes))
    return DynamicConversion(proto, plan, report)


def quantize_dynamic(
    model: ModelSource, op_types: Iterable[str] | None = None, **options: Any
) -> onnx.ModelProto:
    """Dynamic quantization: weights stored as 8-bit integers, activations quantized at run time
    (no calibration data). Returns the quantized ``onnx.ModelProto``; :func:`convert_dynamic`
    takes the same arguments and returns the plan and the report too.

    Args:
        model: A path, an ``onnx.ModelProto`` or an ``onnx_ir.Model`` (copied, not changed).
        op_types: The op types to quantize (default: all of MatMul, Gemm, LSTM, GRU, RNN, Conv,
            ConvTranspose, Gather); another name is a :class:`ConfigError`.
        weight_dtype: ``"int8"`` (the default, symmetric), or ``"uint8"``: the same model with
            every int8 tensor stored as uint8 (exact on onnxruntime on x86 CPUs without VNNI,
            whose uint8 x int8 kernels saturate; :mod:`onnxq.passes.uint8_twin`).
        per_channel: One weight scale per output channel (``per_channel_dynamic``, the default)
            or per tensor (``dynamic``), when no ``qconfig_mapping`` is given.
        format: ``"qdq"`` (the default; standard ops: DynamicQuantizeLinear + MatMulInteger, RNN
            weights behind DequantizeLinear), ``"onnxruntime"`` (its contrib ops
            DynamicQuantizeMatMul and DynamicQuantizeLSTM) or ``"onnxq"`` (MatMul / Gemm as
            ``ai.onnxq.DynamicMatMul`` on onnxq's kernels, run with
            :func:`onnxq.runtime.InferenceSession`; LSTM / GRU / RNN as in ``qdq`` for now).
        qconfig_mapping: Which config each node gets (the dynamic presets ``dynamic`` /
            ``per_channel_dynamic``, a weight-only config, or None: float); it replaces the
            default that ``per_channel`` chooses.
        reduce_range: 7-bit weights (symmetric ``[-63, 63]``, onnxruntime's ``reduce_range``)
            for the weights an integer matmul reads (MatMul / Gemm, the LSTM of the
            ``onnxruntime`` format, the recurrent ops of the ``onnxq`` format; weight-only
            weights keep 8 bits). ``True`` or ``False`` sets it; ``None`` (the default) means
            ``True`` without a ``qconfig_mapping`` and the mapping's weight specs with one.
            7-bit weights keep every pair of uint8 x int8 products inside int16, so x86 CPUs
            without VNNI (AVX2 only: AMD Zen 1-3, Intel before Ice Lake) compute the model
            exactly with ``vpmaddubsw``: stock onnxruntime's u8 x s8 kernels, which saturate on
            8-bit weights there, give the model's exact integers, and onnxq's kernels run about
            as fast as onnxruntime's (``scripts/bench_dynamic.py``). It costs one bit of weight
            precision on every CPU (docs/dynamic.md gives the measured cosines).
    """
    return convert_dynamic(model, op_types, **options).model


def dynamic_format(name: str) -> DynamicFormat:
    """The :class:`DynamicFormat` called ``name``; an unknown name is a ConfigError."""
    return enum_member(DynamicFormat, name, "dynamic format")


__all__ = ["DynamicConversion", "convert_dynamic", "dynamic_format", "quantize_dynamic"]
