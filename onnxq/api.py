"""The Python API: ``prepare`` / ``calibrate`` / ``convert`` on ONNX, and ``quantize_static``.

Orchestration only. Each stage is a value that can be saved, inspected or replaced::

    prepared = onnxq.prepare("model.onnx", "x86")      # structural passes + QuantPlan
    calibration = prepared.calibrate(batches)          # CalibrationResult (save/load/merge)
    qmodel = prepared.convert()                        # onnx.ModelProto in QDQ format
    qmodel = prepared.convert(CalibrationResult.load("calib.json"), plan=edited_plan)

``convert`` runs the conversion stages on a copy of the prepared model:
``resolve_qparams(plan, model, calibration)`` (activation parameters by tensor group) ->
``quantize_weights(plan, model, act_qparams, method)`` (weights from the weight-method registry)
-> ``InsertQDQ(plan, act_qparams, weights)`` (the model, and the map from each quantized float
tensor to its Q/DQ pair) -> ``onnx.checker`` -> the report. :func:`convert` returns all of them
as one :class:`Conversion`. Loading is :mod:`onnxq.io`, the structural rewrites :mod:`onnxq.passes`,
the decisions :mod:`onnxq.planning`, statistics :mod:`onnxq.calibration`, the weights
:mod:`onnxq.weights`, the summary :mod:`onnxq.report`. Nothing here writes files.

Two post-training algorithms are off by default: ``prepare(..., equalize=True)`` runs cross-layer
equalisation (:mod:`onnxq.passes.equalize`) with the structural passes, and
``prepare(..., bias_correction=True)`` also observes the mean of each layer's input while
calibrating (in the same runs: :mod:`onnxq.accuracy.input_means`) and corrects the biases for
the weights' rounding at conversion (:mod:`onnxq.weights.bias_correction`). SmoothQuant needs
data before planning: :func:`smooth_quant` returns the smoothed float model
(:mod:`onnxq.accuracy.smoothing`), and ``quantize_static(..., smooth_quant=0.5)`` uses it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Union

import onnx
import onnx_ir as ir

from onnxq.accuracy.input_means import ChannelMean, with_means, without_means
from onnxq.accuracy.saturation import audit_layers
from onnxq.calibration.budget import default_max_memory, parse_memory
from onnxq.calibration.resolve import ActivationQParams, drop_unreached, make_observers, resolve_qparams
from onnxq.calibration.result import CalibrationResult
from onnxq.calibration.shard import Shard
from onnxq.calibration.subgraphs import untaken_branches
from onnxq.errors import CalibrationDataError, ConfigError, OnnxqError, UnsupportedModelError
from onnxq.io import load_model, tensor_bytes, to_proto
from onnxq.opsets import MIN_OPSET, qdq_opset
from onnxq.passes import run_passes, structural_passes
from onnxq.passes.insert_qdq import InsertQDQ, QDQEntry
from onnxq.planning import prequantized
from onnxq.planning.fusion import fusion_groups
from onnxq.planning.plan import PREQUANTIZED_REASON, QuantPlan, build_plan, plannable_graphs
from onnxq.planning.transformer import attention_softmaxes
from onnxq.qconfig import QConfig, QConfigMapping, resolve_qconfig
from onnxq.report import QuantizationReport, build_report
from onnxq.scheme import PerBlock
from onnxq.targets import AUDITED_TARGETS, DEFAULT_TARGET, target_mapping, weight_only
from onnxq.weights import QuantizedWeights, quantize_weights
from onnxq.weights.adaround import AdaRoundConfig
from onnxq.weights.bias_correction import CORRECTED_INPUT_AXES
from onnxq.weights.registry import weight_method_needs_data

logger = logging.getLogger(__name__)

ModelSource = Union[str, "os.PathLike[str]", onnx.ModelProto, ir.Model]
QConfigLike = Union[str, "os.PathLike[str]", QConfig, QConfigMapping, None]
#: What calibration takes (:mod:`onnxq.calibration.adapters`): ``{input name: array}`` dicts, tuples
#: of arrays or tensors in input order (a ``DataLoader``'s ``(x, y)``: labels ignored), bare arrays
#: for a one-input model, or a source of :mod:`onnxq.calibration.sources` (files, image folders).
Batches = Iterable[Any]
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


class PreparedModel:
    """A float model ready for calibration: structural passes applied, quantization planned.

    Use :meth:`calibrate` (one or more times), then :meth:`convert`. The prepared fp32 model itself
    is never modified by ``convert``, so more data can be calibrated and converted again.
    """

    def __init__(
        self,
        model: ir.Model,
        plan: QuantPlan,
        pass_notes: tuple[str, ...] = (),
        *,
        saturation_audit: bool = False,
        bias_correction: bool = False,
        mapping: QConfigMapping | None = None,
        source_op_types: Mapping[str, str] | None = None,
        layer_inputs: int = 0,
    ) -> None:
        self._model = model
        self._plan = plan
        self._mapping = mapping
        self._source_op_types = dict(source_op_types or {})
        self._pass_notes = pass_notes
        self._saturation_audit = saturation_audit
        self._calibration: CalibrationResult | None = None
        self._conversion: Conversion | None = None
        self._means = _layer_input_means(model, plan) if bias_correction else None
        self._reservoirs = _layer_reservoirs(model, plan, layer_inputs) if layer_inputs else {}

    @property
    def model(self) -> ir.Model:
        """The prepared fp32 model (after the structural passes)."""
        return self._model

    @property
    def plan(self) -> QuantPlan:
        return self._plan

    @property
    def mapping(self) -> QConfigMapping | None:
        """The QConfigMapping the plan was made from (None when the plan was given directly)."""
        return self._mapping

    def plan_for(self, mapping: QConfigMapping) -> QuantPlan:
        """The plan ``mapping`` gives on the prepared model, for ``convert(plan=...)``: a node
        mapped to None stays float. Its observers are a subset of the prepared plan's when only
        None entries were added, so one calibration serves every such plan."""
        return plan_model(self._model, mapping, self._source_op_types)

    @property
    def calibration(self) -> CalibrationResult | None:
        """The statistics of every :meth:`calibrate` call so far (None before the first)."""
        return self._calibration

    @property
    def num_samples(self) -> int:
        """Calibration samples seen so far, over every :meth:`calibrate` call."""
        return 0 if self._calibration is None else self._calibration.num_samples

    @property
    def report(self) -> QuantizationReport:
        """The plan before calibration; after :meth:`convert`, what was actually quantized."""
        if self._conversion is not None:
            return self._conversion.report
        return build_report(self._plan, pass_notes=self._pass_notes)

    @property
    def conversion(self) -> Conversion | None:
        """Every stage of the last :meth:`convert` (the Q/DQ map among them), or None."""
        return self._conversion

    def calibrate(
        self,
        batches: Batches,
        *,
        progress: bool = True,
        shard: Shard | str | None = None,
        max_memory: int | str | None = None,
    ) -> CalibrationResult:
        """Run the fp32 model over ``batches`` (:data:`Batches`); statistics accumulate over calls.
        Returns the accumulated result (a copy: later calls do not change it).

        ``shard`` (``Shard`` or ``"i/N"``) keeps every N-th sample, for results merged later;
        ``max_memory`` (bytes or ``"2GB"``; default: half the machine's memory, at most 8 GiB)
        bounds the process's memory while calibrating (:mod:`onnxq.calibration.budget`)."""
        from onnxq.calibration.engine import calibrate  # lazy: the engine loads onnxruntime

        if isinstance(shard, str):
            shard = Shard.parse(shard)
        if max_memory is None:
            max_memory = default_max_memory()
        elif isinstance(max_memory, str):
            max_memory = parse_memory(max_memory)
        start = self._calibration.copy() if self._calibration is not None else None
        observers = start.observers if start is not None else make_observers(self._plan)
        if self._means is not None:  # bias correction: the layers' input means, in the same runs
            observers = with_means(observers, self._means)
        for layers in _distinct_inputs(self._reservoirs):  # AdaRound's input rows, in the same runs
            observers = with_means(observers, layers)
        run = calibrate(
            self._model, observers, batches, progress=progress, shard=shard, max_memory=max_memory
        )
        observed = dict(run.observers)
        for _ in range(1 + len(list(_distinct_inputs(self._reservoirs)))):
            observed = without_means(observed)
        self._calibration = CalibrationResult(observed, run.num_samples + self.num_samples)
        return self._calibration.copy()

    def convert(
        self,
        calibration: CalibrationResult | None = None,
        plan: QuantPlan | None = None,
        *,
        weight_method: str = "rtn",
        weight_config: object | None = None,
    ) -> onnx.ModelProto:
        """The QDQ model (checked with ``onnx.checker``) from ``calibration`` (default: what
        :meth:`calibrate` gathered) and ``plan`` (default: the prepared one); ``weight_config``
        is the weight method's settings (e.g. an ``AdaRoundConfig``)."""
        means = None
        if self._means is not None:
            if not any(m.reached for m in self._means.values()):
                raise CalibrationDataError(
                    "bias correction needs the layers' input means: call calibrate(batches) on data "
                    "(a loaded calibration result does not hold them)"
                )
            means = {name: m.mean for name, m in self._means.items() if m.reached}
        self._conversion = convert(
            self._model,
            self._plan if plan is None else plan,
            self._calibration if calibration is None else calibration,
            weight_method=weight_method,
            pass_notes=self._pass_notes,
            saturation_audit=self._saturation_audit,
            input_means=means,
            layer_inputs={node: r.data for node, (_, r) in self._reservoirs.items() if r.reached},
            weight_config=weight_config,
        )
        return self._conversion.model


def required_opset(mapping: QConfigMapping) -> int:
    """The opset the Q/DQ of ``mapping``'s specs need (21 for 4/16-bit types and per-block scales)."""
    specs = [s for qc in mapping.qconfigs() for s in (qc.activation, qc.weight) if s is not None]
    return max([qdq_opset(s.dtype, isinstance(s.granularity, PerBlock)) for s in specs], default=MIN_OPSET)


def _layer_input_means(model: ir.Model, plan: QuantPlan) -> dict[str, ChannelMean]:
    """A mean accumulator for the input of every layer whose bias correction can correct."""
    op_types = {node.name: node.op_type for graph in plannable_graphs(model.graph) for node in graph}
    return {
        wp.activation: ChannelMean(CORRECTED_INPUT_AXES[op_types[wp.node]])
        for wp in plan.weights.values()
        if wp.activation is not None and wp.bias is not None and op_types.get(wp.node) in CORRECTED_INPUT_AXES
    }


def _layer_reservoirs(model: ir.Model, plan: QuantPlan, rows: int) -> dict[str, tuple[str, Any]]:
    """By node: its input tensor's name and a reservoir of at most ``rows`` of its input rows."""
    from onnxq.accuracy.layer_inputs import reservoir_for
    from onnxq.graph import constant_array

    nodes = {node.name: node for graph in plannable_graphs(model.graph) for node in graph}
    out: dict[str, tuple[str, Any]] = {}
    for wp in plan.weights.values():
        node = nodes.get(wp.node)
        w = None if node is None else constant_array(node.inputs[1])
        if node is not None and w is not None and wp.activation is not None:
            reservoir = reservoir_for(node, tuple(w.shape), rows)
            if reservoir is not None:
                out[wp.node] = (wp.activation, reservoir)
    return out


def _distinct_inputs(reservoirs: Mapping[str, tuple[str, Any]]) -> Iterable[dict[str, Any]]:
    """The reservoirs in rounds keyed by input tensor, each tensor at most once a round."""
    rounds: list[dict[str, Any]] = []
    for name, reservoir in reservoirs.values():
        free = next((r for r in rounds if name not in r), None)
        if free is None:
            rounds.append(free := {})
        free[name] = reservoir
    return rounds


def structurally_prepared(
    model: ModelSource,
    min_opset: int,
    requantize: bool,
    *,
    equalize: bool = False,
    bias_correction: bool = False,
) -> tuple[ir.Model, dict[str, str], tuple[str, ...]]:
    """``model`` loaded (copied), refused when quantized already (unless ``requantize``), after the
    structural passes (with cross-layer equalisation and zero biases when asked); with each node's
    op type in the user's model and the passes' notes."""
    ir_model = model.clone() if isinstance(model, ir.Model) else load_model(model)
    if not requantize and (found := prequantized.describe(ir_model.graph)):
        raise UnsupportedModelError(
            f"model is already quantized ({found}); give the float model, or ask to quantize only "
            "what is still float (requantize=True, --requantize)"
        )
    source_op_types = {node.name: node.op_type for node in ir_model.graph if node.name}
    passes = structural_passes(min_opset, equalize=equalize, bias_correction=bias_correction)
    ir_model, results = run_passes(ir_model, passes)
    return ir_model, source_op_types, tuple(note for r in results for note in r.notes)


def smooth_quant(
    model: ModelSource,
    batches: Batches,
    alpha: float = 0.5,
    *,
    progress: bool = True,
    max_memory: int | str | None = None,
) -> ir.Model:
    """The float ``model`` after the structural passes and SmoothQuant (strength ``alpha`` in
    [0, 1]), from the LayerNorm outputs' channel maxima over ``batches`` (re-iterable): it computes
    the same, and quantizes with per-tensor activations better. Give it to :func:`prepare`."""
    from onnxq.accuracy.smoothing import smooth_prepared

    ir_model, _, _ = structurally_prepared(model, MIN_OPSET, requantize=False)
    memory = parse_memory(max_memory) if isinstance(max_memory, str) else max_memory
    smoothed, _ = smooth_prepared(
        ir_model, batches, alpha, progress=progress, max_memory=memory or default_max_memory()
    )
    return smoothed


def prepare(
    model: ModelSource,
    qconfig_mapping: QConfigLike = None,
    *,
    target: str = DEFAULT_TARGET,
    requantize: bool = False,
    equalize: bool = False,
    bias_correction: bool = False,
    layer_inputs: int = 0,
    min_opset: int | None = None,
) -> PreparedModel:
    """Load ``model``, run the structural passes and plan the quantization.

    Args:
        model: A path, an ``onnx.ModelProto`` or an ``onnx_ir.Model`` (which is copied, not changed).
        qconfig_mapping: A preset name ("x86", "fbgemm", "qnnpack", "arm"), a path to a JSON
            qconfig file, a :class:`QConfig` (applied globally) or a :class:`QConfigMapping`;
            None (the default) quantizes for ``target``.
        target: Where the model will run, when no qconfig is given (:mod:`onnxq.targets`). A
            transformer (attention found in the graph) then keeps its activations in float and
            its weights int8: static int8 activations lose most of its signal.
        requantize: For a model quantized already: quantize only what is still float (its
            quantized part is left as it is; the report says which nodes). Without it such a
            model is refused.
        equalize: Cross-layer equalisation of Conv -> (ReLU) -> Conv pairs before planning
            (:mod:`onnxq.passes.equalize`): the float model computes the same, its weights
            quantize better per tensor.
        bias_correction: Correct each Conv/Gemm bias for the mean output shift its weight's
            rounding causes (:mod:`onnxq.weights.bias_correction`), from the means of the layers'
            inputs observed while calibrating; layers without a bias get one.
        layer_inputs: Keep a sample of at most this many input rows per Conv/Gemm/MatMul while
            calibrating (:mod:`onnxq.accuracy.layer_inputs`), for ``convert(weight_method="adaround")``.
        min_opset: Upgrade the model to at least this opset (default: what the qconfig's Q/DQ
            need), e.g. 21 for plans converted later with 16-bit layers (the accuracy budget's
            int16 fallback).
    """
    chosen = qconfig_mapping is not None
    if isinstance(qconfig_mapping, os.PathLike):
        qconfig_mapping = os.fspath(qconfig_mapping)
    mapping = resolve_qconfig(qconfig_mapping) if chosen else target_mapping(target)
    opset = max(required_opset(mapping), min_opset or 0)
    ir_model, source_op_types, notes = structurally_prepared(
        model, opset, requantize, equalize=equalize, bias_correction=bias_correction
    )
    attention = len(attention_softmaxes(ir_model.graph))
    if attention:
        advice = (
            f"the model is a transformer ({attention} attention block(s)): static int8 activations "
            "lose most of its signal; dynamic quantization is the mode for it"
        )
        if not chosen:  # the default changes what is quantized: say so loudly
            mapping = weight_only(mapping)
            advice += "; activations are kept in float and weights stored int8"
        logger.log(logging.INFO if chosen else logging.WARNING, "%s", advice)
        notes += (advice,)
    plan = plan_model(ir_model, mapping, source_op_types)
    if requantize and (found := prequantized.describe(ir_model.graph)):
        kept = sum(d.reason == PREQUANTIZED_REASON for d in plan.decisions)
        notes += (f"requantize: the input model's quantization ({found}; {kept} node(s)) is kept as it is",)
    logger.info(
        "prepared: %d nodes to quantize, %d tensors to observe",
        len(plan.quantized_nodes()),
        len(plan.observed_values()),
    )
    audit = not chosen and target in AUDITED_TARGETS
    return PreparedModel(
        ir_model,
        plan,
        notes,
        saturation_audit=audit,
        bias_correction=bias_correction,
        mapping=mapping,
        source_op_types=source_op_types,
        layer_inputs=layer_inputs,
    )


def plan_model(model: ir.Model, mapping: QConfigMapping, source_op_types: Mapping[str, str]) -> QuantPlan:
    """The quantization plan of the prepared ``model`` under ``mapping`` (its fusion groups found)."""
    groups = [group for graph in plannable_graphs(model.graph) for group in fusion_groups(graph)]
    return build_plan(model, mapping, groups, source_op_types)


def quantize_static(
    model: ModelSource,
    batches: Batches,
    qconfig: QConfigLike = None,
    *,
    target: str = DEFAULT_TARGET,
    progress: bool = True,
    weight_method: str = "rtn",
    equalize: bool = False,
    bias_correction: bool = False,
    smooth_quant_alpha: float | None = None,
    weight_config: object | None = None,
) -> onnx.ModelProto:
    """``prepare`` + ``calibrate`` + ``convert`` in one call; returns the QDQ ``onnx.ModelProto``.
    ``smooth_quant_alpha`` (e.g. 0.5) first smooths the model (:func:`smooth_quant`; ``batches``
    are then read twice); ``weight_config``: the weight method's settings (an ``AdaRoundConfig``)."""
    if smooth_quant_alpha is not None:
        model = smooth_quant(model, batches, smooth_quant_alpha, progress=progress)
    rows = adaround_rows(weight_method, weight_config)
    prepared = prepare(
        model, qconfig, target=target, equalize=equalize, bias_correction=bias_correction, layer_inputs=rows
    )
    prepared.calibrate(batches, progress=progress)
    return prepared.convert(weight_method=weight_method, weight_config=weight_config)


def adaround_rows(weight_method: str, weight_config: object | None) -> int:
    """The input rows per layer to keep while calibrating for ``weight_method`` (0 but for AdaRound)."""
    if weight_method != "adaround":
        return 0
    return weight_config.rows if isinstance(weight_config, AdaRoundConfig) else AdaRoundConfig().rows


__all__ = [
    "Conversion",
    "PreparedModel",
    "adaround_rows",
    "convert",
    "prepare",
    "quantize_static",
    "required_opset",
    "smooth_quant",
]
