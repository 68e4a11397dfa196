"""One conversion of a prepared float model: activation qparams, weights, Q/DQ, check, report.

``convert`` runs the conversion stages on a copy of the prepared model:
``resolve_qparams(plan, model, calibration)`` (activation parameters by tensor group) ->
``quantize_weights(plan, model, act_qparams, method)`` (weights from the weight-method registry)
-> ``InsertQDQ(plan, act_qparams, weights)`` (the model, and the map from each quantized float
tensor to its Q/DQ pair) -> ``onnx.checker`` -> the report, all returned as one
:class:`Conversion`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import onnx
import onnx_ir as ir

from onnxq.accuracy.saturation import audit_layers
from onnxq.calibration.resolve import ActivationQParams, drop_unreached, resolve_qparams
from onnxq.calibration.result import CalibrationResult
from onnxq.calibration.subgraphs import untaken_branches
from onnxq.errors import CalibrationDataError, ConfigError, OnnxqError
from onnxq.io import tensor_bytes, to_proto
from onnxq.passes.insert_qdq import InsertQDQ, QDQEntry
from onnxq.planning.plan import QuantPlan
from onnxq.report import QuantizationReport, build_report
from onnxq.weights import QuantizedWeights, quantize_weights
from onnxq.weights.registry import weight_method_needs_data

logger = logging.getLogger(__name__)

CHECKER_MAX_BYTES = 1_800_000_000


@dataclass(frozen=True)
class Conversion:
    """Every stage of one conversion.

    Attributes:
        model: The QDQ model (checked with ``onnx.checker``).
        plan: The plan applied (the given one, with nodes no calibration sample reached dropped).
        qparams: The activation parameters, by tensor group of ``plan``.
        weights: The quantized weights and biases.
        qdq_map: For each quantized float tensor (by its name in the prepared model), its Q/DQ pair.
        report: What was quantized, what stayed float and why.
    """

    model: onnx.ModelProto
    plan: QuantPlan
    qparams: ActivationQParams
    weights: QuantizedWeights
    qdq_map: Mapping[str, QDQEntry]
    report: QuantizationReport


def convert(
    model: ir.Model,
    plan: QuantPlan,
    calibration: CalibrationResult | None,
    *,
    weight_method: str = "rtn",
    pass_notes: tuple[str, ...] = (),
    saturation_audit: bool = False,
    input_means: Mapping[str, Any] | None = None,
    layer_inputs: Mapping[str, Any] | None = None,
    weight_config: object | None = None,
) -> Conversion:
    """Convert the prepared fp32 ``model`` (not modified) as ``plan`` says, with ``calibration``'s
    statistics (None only when the plan observes nothing: fixed ranges, weight-only).

    ``saturation_audit`` (the ``x86-avx2`` target) gives 7-bit inputs to the layers whose 8-bit
    ones could saturate AVX2's 16-bit pair sums, and only to them (:mod:`onnxq.accuracy.saturation`).
    ``input_means`` (bias correction): the per-channel means of layer inputs, by tensor name;
    ``layer_inputs`` (AdaRound): a sample of each layer's input rows, by node name.
    ``weight_config``: the weight method's settings (an ``AdaRoundConfig``; default: its defaults).
    """
    if weight_method_needs_data(weight_method):
        raise ConfigError(
            f"weight method {weight_method!r} needs the layers' input statistics, which static "
            "conversion does not gather: use it in weight-only mode (quantize_weight_only(..., "
            "data=...), or onnxq quantize --mode weight-only --calib DATA)"
        )
    if calibration is None:
        if plan.observed_values():
            raise CalibrationDataError("no calibration data: call calibrate(batches) before convert()")
        calibration = CalibrationResult()
    elif plan.observed_values() and calibration.num_samples == 0:
        raise CalibrationDataError("the calibration result holds no samples")
    qparams = resolve_qparams(plan, model, calibration)
    applied = drop_unreached(plan, qparams.groups)
    if qparams.unreached:
        dropped = len(plan.quantized_nodes()) - len(applied.quantized_nodes())
        logger.warning(
            "%d tensor(s) reached by no calibration sample (%s); %d node(s) left in float",
            len(qparams.unreached),
            ", ".join(sorted(qparams.unreached)[:5]),
            dropped,
        )
    pass_notes = (*pass_notes, *untaken_branches(model.graph, plan.observed_values(), qparams.unreached))
    weights = quantize_weights(
        applied, model, qparams.groups, weight_method, input_means, layer_inputs, weight_config
    )
    if saturation_audit:
        narrow, lines = audit_layers(applied, model, qparams.groups, weights, calibration.observers)
        audited = sum(1 for w in applied.weights.values() if w.activation is not None)
        pass_notes = (*pass_notes, f"x86-avx2: {len(lines)} of {audited} layer(s) get 7-bit inputs "
                      f"against vpmaddubsw saturation", *lines)  # fmt: skip
        if narrow:
            qparams = resolve_qparams(plan, model, calibration, narrow)
            applied = drop_unreached(plan, qparams.groups)
            weights = quantize_weights(
                applied, model, qparams.groups, weight_method, input_means, layer_inputs, weight_config
            )
    result = InsertQDQ(applied, qparams.groups, weights)(model.clone())
    proto = to_proto(result.model)
    if tensor_bytes(result.model) < CHECKER_MAX_BYTES:  # the checker serialises: protobuf's 2 GB limit
        try:
            onnx.checker.check_model(proto)
        except onnx.checker.ValidationError as e:  # a bug of ours, not bad input
            raise OnnxqError(f"quantized model fails onnx.checker: {str(e).splitlines()[0]}") from e
    report = build_report(
        applied,
        unreached=qparams.unreached,
        nonfinite=calibration.nonfinite,
        num_samples=calibration.num_samples,
        pass_notes=pass_notes,
    )
    logger.info("converted: %d of %d nodes quantized", len(report.quantized), len(report.nodes))
    return Conversion(proto, applied, qparams, weights, result.qdq_map, report)


__all__ = ["CHECKER_MAX_BYTES", "Conversion", "convert"]
