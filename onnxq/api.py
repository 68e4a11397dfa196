"""The Python API: ``prepare`` / ``calibrate`` / ``convert`` on ONNX, and ``quantize_static``.

Orchestration only. Each stage is a value that can be saved, inspected or replaced::

    prepared = onnxq.prepare("model.onnx", "x86")      # structural passes + QuantPlan
    calibration = prepared.calibrate(batches)          # CalibrationResult (save/load/merge)
    qmodel = prepared.convert()                        # onnx.ModelProto in QDQ format
    qmodel = prepared.convert(CalibrationResult.load("calib.json"), plan=edited_plan)

The prepared model is :mod:`onnxq.prepared`; ``convert`` and its stages (qparams, weights, Q/DQ,
check, report, all returned as one ``Conversion``) are :mod:`onnxq.conversion`; the layers' data
bias correction and AdaRound gather while calibrating is :mod:`onnxq.accuracy.layer_data`; what
the API accepts is :mod:`onnxq.inputs`. Loading is :mod:`onnxq.io`, the structural rewrites
:mod:`onnxq.passes`, the decisions :mod:`onnxq.planning`, statistics :mod:`onnxq.calibration`, the
weights :mod:`onnxq.weights`, the summary :mod:`onnxq.report`. Nothing here writes files.

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

import onnx
import onnx_ir as ir

from onnxq.accuracy.layer_data import adaround_rows
from onnxq.calibration.budget import default_max_memory, parse_memory
from onnxq.conversion import CHECKER_MAX_BYTES, Conversion, convert
from onnxq.errors import UnsupportedModelError
from onnxq.inputs import Batches, ModelSource, QConfigLike
from onnxq.io import load_model
from onnxq.opsets import MIN_OPSET, qdq_opset
from onnxq.passes import run_passes, structural_passes
from onnxq.planning import prequantized
from onnxq.planning.plan import PREQUANTIZED_REASON
from onnxq.planning.transformer import attention_softmaxes
from onnxq.prepared import PreparedModel, plan_model
from onnxq.qconfig import QConfigMapping, resolve_qconfig
from onnxq.scheme import PerBlock
from onnxq.targets import AUDITED_TARGETS, DEFAULT_TARGET, target_mapping, weight_only

logger = logging.getLogger(__name__)


def required_opset(mapping: QConfigMapping) -> int:
    """The opset the Q/DQ of ``mapping``'s specs need (21 for 4/16-bit types and per-block scales)."""
    specs = [s for qc in mapping.qconfigs() for s in (qc.activation, qc.weight) if s is not None]
    return max([qdq_opset(s.dtype, isinstance(s.granularity, PerBlock)) for s in specs], default=MIN_OPSET)


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
    float_outputs: bool = False,
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
        float_outputs: Leave float the outputs of quantized nodes that are graph outputs read by
            no other node (NNCF's choice; PyTorch and onnxruntime quantize them, the default): the
            layer's input and weights stay quantized, only the rounding of the model's final
            values is skipped. The report lists the outputs kept float.
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
    plan = plan_model(ir_model, mapping, source_op_types, float_outputs=float_outputs)
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
        float_outputs=float_outputs,
    )


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
    float_outputs: bool = False,
) -> onnx.ModelProto:
    """``prepare`` + ``calibrate`` + ``convert`` in one call; returns the QDQ ``onnx.ModelProto``.
    ``smooth_quant_alpha`` (e.g. 0.5) first smooths the model (:func:`smooth_quant`; ``batches``
    are then read twice); ``weight_config``: the weight method's settings (an ``AdaRoundConfig``);
    ``float_outputs``: the graph outputs no node reads stay float (see :func:`prepare`)."""
    if smooth_quant_alpha is not None:
        model = smooth_quant(model, batches, smooth_quant_alpha, progress=progress)
    rows = adaround_rows(weight_method, weight_config)
    prepared = prepare(
        model,
        qconfig,
        target=target,
        equalize=equalize,
        bias_correction=bias_correction,
        layer_inputs=rows,
        float_outputs=float_outputs,
    )
    prepared.calibrate(batches, progress=progress)
    return prepared.convert(weight_method=weight_method, weight_config=weight_config)


__all__ = [
    "CHECKER_MAX_BYTES",
    "Batches",
    "Conversion",
    "ModelSource",
    "PreparedModel",
    "QConfigLike",
    "adaround_rows",
    "convert",
    "plan_model",
    "prepare",
    "quantize_static",
    "required_opset",
    "smooth_quant",
    "structurally_prepared",
]
