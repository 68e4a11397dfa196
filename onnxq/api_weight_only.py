"""Weight-only quantization, the Python API: weights stored as int8 or 4-bit integers, activations
left in float; data-free with ``method="rtn"``, with calibration data for ``method="gptq"`` (the
layers' input Hessians, :mod:`onnxq.weights.hessian`, gathered in one run over the fp32 model).

``quantize_weight_only(model, dtype, block_size, ...)`` returns the model; ``convert_weight_only``
the model, the plan (:mod:`onnxq.planning.weight_only`) and the report. The model goes through the
same structural passes as for the other modes (its opset raised to 21 for 4-bit weights, which
DequantizeLinear's ``block_size`` needs), then the weight-only passes
(:func:`onnxq.passes.weight_only_passes`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import onnx
import onnx_ir as ir

from onnxq.api import ModelSource, structurally_prepared
from onnxq.errors import ConfigError, OnnxqError, UnsupportedModelError
from onnxq.graph import remove_unused_initializers
from onnxq.io import AUTO_EXTERNAL_BYTES, save_model, tensor_bytes, to_proto
from onnxq.kernels.op_schemas import register_op_schemas
from onnxq.opsets import qdq_opset
from onnxq.passes import run_passes, weight_only_passes
from onnxq.passes.weightless import check_model
from onnxq.planning.weight_only import (
    WeightOnlyFormat,
    WeightOnlyPlan,
    build_weight_only_plan,
    check_weight_only_op_types,
    weight_only_format,
    weight_only_spec,
)
from onnxq.report import QuantizationReport, build_planned_report
from onnxq.scheme import PerBlock
from onnxq.weights.registry import weight_method_data, weight_method_needs_data

logger = logging.getLogger(__name__)

#: How each block's (int8: channel's) scale is chosen: ``mse`` (the default) the clipping ratio of
#: least squared rounding error (:mod:`onnxq.weights.clip_search`), ``minmax`` the full range.
SCALE_SEARCHES = ("mse", "minmax")


@dataclass(frozen=True, eq=False)
class WeightOnlyConversion:
    """A weight-only quantization: the quantized model as an ``onnx_ir`` model (of any size: its
    unchanged tensors stay memory-mapped from the input's external data), the plan and the report.
    :attr:`model` is the ``onnx.ModelProto`` (checked with ``onnx.checker``); :meth:`save` writes
    a model of any size, with external data over protobuf's 2 GB limit."""

    ir_model: ir.Model
    plan: WeightOnlyPlan
    report: QuantizationReport

    @cached_property
    def model(self) -> onnx.ModelProto:
        """The quantized model as one ``onnx.ModelProto`` (built on first use).

        Raises:
            OnnxqError: Its tensors exceed protobuf's 2 GB limit (write it with :meth:`save`).
        """
        size = tensor_bytes(self.ir_model)
        if size > AUTO_EXTERNAL_BYTES:
            raise OnnxqError(
                f"the quantized model holds {size / 2**30:.2f} GiB of tensors, over protobuf's 2 GB limit: "
                "write it with convert_weight_only(...).save(path), which uses external data"
            )
        return to_proto(self.ir_model)

    def save(self, path: str | os.PathLike[str], *, external_data: bool | None = None) -> Path:
        """Write the model atomically (:func:`onnxq.io.save_model`: external data when asked or
        when it is over 2 GB)."""
        return save_model(self.ir_model, path, external_data=external_data)


def convert_weight_only(
    model: ModelSource,
    dtype: str = "int4",
    block_size: int = 32,
    *,
    symmetric: bool = True,
    method: str = "rtn",
    op_types: Iterable[str] | None = None,
    format: str = "qdq",
    data: Iterable[Any] | None = None,
    progress: bool = True,
    scale_search: str = "mse",
    sequential: bool = False,
) -> WeightOnlyConversion:
    """:func:`quantize_weight_only` (see its arguments) with every stage kept: the model, the plan
    and the report."""
    spec = weight_only_spec(dtype, block_size, symmetric)
    fmt = weight_only_format(format)
    if scale_search not in SCALE_SEARCHES:
        raise ConfigError(f"scale_search must be one of {', '.join(SCALE_SEARCHES)}, got {scale_search!r}")
    if weight_method_data(method) == "inputs":  # an unknown method is refused before the model is read
        raise ConfigError(
            f"weight method {method!r} learns from samples of the layers' inputs, which static "
            "quantization keeps: use it with --mode static (--weight-method, or weight_method=)"
        )
    needs_data = weight_method_needs_data(method)
    if needs_data and data is None:
        raise ConfigError(f"weight method {method!r} needs calibration data (data=..., --calib)")
    if sequential and not needs_data:
        raise ConfigError(
            f"sequential=True calibrates each layer's Hessian; weight method {method!r} uses none"
        )
    chosen = check_weight_only_op_types(op_types)
    opset = qdq_opset(spec.dtype, isinstance(spec.granularity, PerBlock))
    _check_runtime_opset(opset)
    ir_model, source_op_types, notes = structurally_prepared(model, opset, requantize=False)
    plan = build_weight_only_plan(ir_model.graph, spec, chosen, fmt, source_op_types)
    hessians = None
    mse_scales = scale_search == "mse"
    if needs_data:  # the layers' input Hessians: over the fp32 model in one calibration run, or
        assert data is not None  # stage by stage over the model quantized so far (sequential)
        if sequential:
            from onnxq.weights.sequential import sequential_hessians
            from onnxq.weights.weight_only import quantize_weight_only as rounded

            def rounder(d: Any, w: Any, h: Any) -> Any:
                return rounded(w, d.spec, d.granularity, method, flatten=d.flatten, node=d.name,
                               op_type=d.op_type, hessian=h, mse_scales=mse_scales)  # fmt: skip

            hessians = sequential_hessians(ir_model, plan, data, rounder, progress=progress)
        else:
            from onnxq.weights.hessian import layer_hessians

            hessians = layer_hessians(ir_model, plan, data, progress=progress)
        logger.info("weight-only: input Hessians of %d layer(s) for %s", len(hessians), method)
    passes = weight_only_passes(plan, method, hessians, mse_scales=mse_scales)
    ir_model, results = run_passes(ir_model, passes)
    remove_unused_initializers(ir_model.graph)
    _forget_inner_types(ir_model.graph)  # onnxruntime infers its own (as in dynamic mode)
    report = build_planned_report(plan, (*notes, *(n for r in results for n in r.notes)), "weight_only")
    conversion = WeightOnlyConversion(ir_model, plan, report)
    if fmt is WeightOnlyFormat.ONNXQ:
        register_op_schemas()  # the checker then knows ai.onnxq.DynamicMatMulNBits
    try:  # the weights held out: any size, no copy of them
        check_model(ir_model)
    except onnx.checker.ValidationError as e:  # a bug of ours, not bad input
        raise OnnxqError(f"quantized model fails onnx.checker: {str(e).splitlines()[0]}") from e
    logger.info("weight-only: %d of %d nodes quantized", len(report.quantized), len(report.nodes))
    return conversion


def _forget_inner_types(graph: ir.Graph) -> None:
    """Clear the types and shapes of the main graph's intermediate values (its ``value_info``)."""
    for node in graph:
        for value in node.outputs:
            if not value.is_graph_output():
                value.type = None
                value.shape = None


def quantize_weight_only(
    model: ModelSource, dtype: str = "int4", block_size: int = 32, **options: Any
) -> onnx.ModelProto:
    """Weight-only quantization (data-free): constant weights stored as integers, activations in
    float. Returns the quantized ``onnx.ModelProto``; :func:`convert_weight_only` takes the same
    arguments and returns the plan and the report too.

    Args:
        model: A path, an ``onnx.ModelProto`` or an ``onnx_ir.Model`` (copied, not changed).
        dtype: ``"int8"`` (one scale per output channel), ``"int4"`` or ``"uint4"`` (one scale
            per block of ``block_size`` along the reduction axis; the model's opset becomes 21).
        block_size: For 4-bit weights: a power of two >= 16 (32, 64, 128); ignored for int8.
        symmetric: Zero points 0 (int4 in [-7, 7], int8 in [-127, 127]; uint4 around 8), or
            chosen per channel / block (``False``).
        method: The registered weight method that rounds the weights: ``"rtn"`` (round to
            nearest, data-free) or ``"gptq"`` (:mod:`onnxq.weights.gptq`: MatMul / Gemm weights
            from the Hessian of their inputs over ``data``; the other ops round to nearest).
        op_types: The op types to quantize (default: all of MatMul, Gemm, Conv, Gather).
        format: ``"qdq"`` (the default: DequantizeLinear feeding the float op),
            ``"onnxruntime"`` (``com.microsoft.MatMulNBits`` for MatMul / Gemm with 4-bit weights,
            the qdq form for the other ops and for int8) or ``"onnxq"``
            (``ai.onnxq.DynamicMatMulNBits``, onnxq's int4 kernel, for the same nodes with blocks of
            32 or more: activations quantized to int8 per row when it runs; run the model with
            :class:`onnxq.runtime.InferenceSession`; int8 weights and the other ops in the qdq
            form, noted in the report).
        data: Calibration batches, as for ``quantize_static`` (needed by ``gptq``).
        progress: Show a progress bar while ``data`` is read.
        scale_search: ``"mse"`` (the default): each block's (int8: channel's) scale is the
            clipping ratio of least squared rounding error (:mod:`onnxq.weights.clip_search`), for
            ``rtn`` and ``gptq`` alike (GPTQ searches each block when it reaches it);
            ``"minmax"``: the block's full range (its largest value exact).
        sequential: For ``gptq``: each layer's Hessian from the inputs the layers quantized before
            it produce (one calibration run per stage of layers, :mod:`onnxq.weights.sequential`)
            rather than from the fp32 model in one run; ``data`` is read once per stage.
    """
    return convert_weight_only(model, dtype, block_size, **options).model


def _check_runtime_opset(opset: int) -> None:
    from onnxq.runtime import max_opset

    if max_opset() < opset:
        raise UnsupportedModelError(
            f"4-bit weights need DequantizeLinear of opset {opset}, which the installed onnxruntime "
            f"(up to opset {max_opset()}) cannot run: upgrade onnxruntime or use dtype int8"
        )


__all__ = ["WeightOnlyConversion", "convert_weight_only", "quantize_weight_only"]
