"""A float model ready for calibration and conversion (:class:`PreparedModel`), and its plan."""

from __future__ import annotations

from collections.abc import Mapping

import onnx
import onnx_ir as ir

from onnxq.accuracy.input_means import with_means, without_means
from onnxq.accuracy.layer_data import distinct_inputs, layer_input_means, layer_reservoirs
from onnxq.calibration.budget import default_max_memory, parse_memory
from onnxq.calibration.resolve import make_observers
from onnxq.calibration.result import CalibrationResult
from onnxq.calibration.shard import Shard
from onnxq.conversion import Conversion, convert
from onnxq.errors import CalibrationDataError
from onnxq.inputs import Batches
from onnxq.planning.fusion import fusion_groups
from onnxq.planning.plan import QuantPlan, build_plan, plannable_graphs
from onnxq.qconfig import QConfigMapping
from onnxq.report import QuantizationReport, build_report


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
        float_outputs: bool = False,
    ) -> None:
        self._model = model
        self._float_outputs = float_outputs
        self._plan = plan
        self._mapping = mapping
        self._source_op_types = dict(source_op_types or {})
        self._pass_notes = pass_notes
        self._saturation_audit = saturation_audit
        self._calibration: CalibrationResult | None = None
        self._conversion: Conversion | None = None
        self._means = layer_input_means(model, plan) if bias_correction else None
        self._reservoirs = layer_reservoirs(model, plan, layer_inputs) if layer_inputs else {}

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
        None entries were added, so one calibration serves every such plan. The graph outputs
        ``prepare(..., float_outputs=True)`` kept float stay float in it."""
        return plan_model(self._model, mapping, self._source_op_types, float_outputs=self._float_outputs)

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
        for layers in distinct_inputs(self._reservoirs):  # AdaRound's input rows, in the same runs
            observers = with_means(observers, layers)
        run = calibrate(
            self._model, observers, batches, progress=progress, shard=shard, max_memory=max_memory
        )
        observed = dict(run.observers)
        for _ in range(1 + len(list(distinct_inputs(self._reservoirs)))):
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


def plan_model(
    model: ir.Model,
    mapping: QConfigMapping,
    source_op_types: Mapping[str, str],
    *,
    float_outputs: bool = False,
) -> QuantPlan:
    """The quantization plan of the prepared ``model`` under ``mapping`` (its fusion groups found);
    ``float_outputs``: the graph outputs no node reads stay float (:func:`build_plan`)."""
    groups = [group for graph in plannable_graphs(model.graph) for group in fusion_groups(graph)]
    return build_plan(model, mapping, groups, source_op_types, float_outputs=float_outputs)


__all__ = ["PreparedModel", "plan_model"]
