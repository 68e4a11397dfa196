"""The Python API: ``prepare`` / ``calibrate`` / ``convert`` on ONNX, and ``quantize_static``.

Orchestration only: loading is :mod:`onnxq.io`, the structural rewrites :mod:`onnxq.passes`, the
decisions :mod:`onnxq.planning.plan`, statistics :mod:`onnxq.calibration.engine`, the rewrite
:mod:`onnxq.passes.insert_qdq`, the summary :mod:`onnxq.report`. Nothing here writes files::

    prepared = onnxq.prepare("model.onnx", "x86")
    prepared.calibrate(batches)          # may be called again to stream more data
    qmodel = prepared.convert()          # onnx.ModelProto in QDQ format
    report = prepared.report    # what was quantized, what stayed float and why
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Union

import numpy as np
import onnx
import onnx_ir as ir

from onnxq.calibration.resolve import drop_unreached, make_observers, resolve_qparams
from onnxq.errors import CalibrationDataError, OnnxqError
from onnxq.io import load_model, tensor_bytes, to_proto
from onnxq.passes import run_passes, structural_passes
from onnxq.passes.insert_qdq import InsertQDQ
from onnxq.planning.fusion import fusion_groups
from onnxq.planning.plan import QuantPlan, build_plan
from onnxq.qconfig import QConfig, QConfigMapping, resolve_qconfig
from onnxq.report import QuantizationReport, build_report

if TYPE_CHECKING:
    from onnxq.calibration.engine import CalibrationResult

logger = logging.getLogger(__name__)

ModelSource = Union[str, "os.PathLike[str]", onnx.ModelProto, ir.Model]
QConfigLike = Union[str, "os.PathLike[str]", QConfig, QConfigMapping, None]
Batches = Iterable[Mapping[str, np.ndarray]]
CHECKER_MAX_BYTES = 1_800_000_000


class PreparedModel:
    """A float model ready for calibration: structural passes applied, observers planned.

    Use :meth:`calibrate` (one or more times), then :meth:`convert`. The prepared fp32 model itself
    is never modified by ``convert``, so more data can be calibrated and converted again.
    """

    def __init__(self, model: ir.Model, plan: QuantPlan, pass_notes: tuple[str, ...] = ()) -> None:
        self._model = model
        self._plan = plan
        self._pass_notes = pass_notes
        self._observers = make_observers(plan)
        self._num_samples = 0
        self._report = build_report(plan, pass_notes=pass_notes)

    @property
    def model(self) -> ir.Model:
        """The prepared fp32 model (after the structural passes)."""
        return self._model

    @property
    def plan(self) -> QuantPlan:
        return self._plan

    @property
    def num_samples(self) -> int:
        """Calibration samples seen so far, over every :meth:`calibrate` call."""
        return self._num_samples

    @property
    def report(self) -> QuantizationReport:
        """The plan before calibration; after :meth:`convert`, what was actually quantized."""
        return self._report

    def calibrate(self, batches: Batches, *, progress: bool = True) -> CalibrationResult:
        """Run the fp32 model over ``batches`` ({input name: array}) and feed the observers."""
        from onnxq.calibration.engine import (
            calibrate,  # lazy: the calibration stack loads onnxruntime sessions
        )

        result = calibrate(self._model, self._observers, batches, progress=progress)
        self._num_samples += result.num_samples
        return result

    def convert(self) -> onnx.ModelProto:
        """The QDQ model from the statistics gathered so far (checked with ``onnx.checker``)."""
        if self._observers and self._num_samples == 0:
            raise CalibrationDataError("no calibration data: call calibrate(batches) before convert()")
        qparams, unreached = resolve_qparams(self._plan, self._model, self._observers)
        plan = drop_unreached(self._plan, qparams)
        nonfinite = {k: o.nonfinite_count for k, o in self._observers.items() if o.nonfinite_count}
        if unreached:
            dropped = len(self._plan.quantized_nodes()) - len(plan.quantized_nodes())
            logger.warning("%d tensor(s) reached by no calibration sample (%s); %d node(s) left in float",
                           len(unreached), ", ".join(sorted(unreached)[:5]), dropped)
        model = self._model.clone()
        InsertQDQ(plan, qparams)(model)
        proto = to_proto(model)
        if tensor_bytes(model) < CHECKER_MAX_BYTES:  # the checker serialises: protobuf's 2 GB limit
            try:
                onnx.checker.check_model(proto)
            except onnx.checker.ValidationError as e:  # a bug of ours, not bad input
                raise OnnxqError(f"quantized model fails onnx.checker: {str(e).splitlines()[0]}") from e
        self._report = build_report(plan, unreached=unreached, nonfinite=nonfinite,
                                    num_samples=self._num_samples, pass_notes=self._pass_notes)
        logger.info("converted: %d of %d nodes quantized",
                    len(self._report.quantized), len(self._report.nodes))
        return proto


def prepare(model: ModelSource, qconfig_mapping: QConfigLike = "x86") -> PreparedModel:
    """Load ``model``, run the structural passes and plan the quantization.

    Args:
        model: A path, an ``onnx.ModelProto`` or an ``onnx_ir.Model`` (which is copied, not changed).
        qconfig_mapping: A preset name ("x86", "fbgemm", "qnnpack", "arm"), a path to a JSON
            qconfig file, a :class:`QConfig` (applied globally) or a :class:`QConfigMapping`.
    """
    mapping = resolve_qconfig(os.fspath(qconfig_mapping) if isinstance(qconfig_mapping, os.PathLike)
                              else qconfig_mapping)
    ir_model = model.clone() if isinstance(model, ir.Model) else load_model(model)
    source_op_types = {node.name: node.op_type for node in ir_model.graph if node.name}
    ir_model, results = run_passes(ir_model, structural_passes())
    plan = build_plan(ir_model, mapping, fusion_groups(ir_model.graph), source_op_types)
    notes = tuple(note for r in results for note in r.notes)
    prepared = PreparedModel(ir_model, plan, notes)
    logger.info("prepared: %d nodes to quantize, %d tensors to observe",
                len(plan.quantized_nodes()), len(plan.observed_values()))
    return prepared


def quantize_static(
    model: ModelSource, batches: Batches, qconfig: QConfigLike = "x86", *, progress: bool = True
) -> onnx.ModelProto:
    """``prepare`` + ``calibrate`` + ``convert`` in one call; returns the QDQ ``onnx.ModelProto``."""
    prepared = prepare(model, qconfig)
    prepared.calibrate(batches, progress=progress)
    return prepared.convert()


__all__ = ["PreparedModel", "prepare", "quantize_static"]
