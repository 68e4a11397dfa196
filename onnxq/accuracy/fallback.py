"""Automatic fallback: keep the fewest layers in float that meet an accuracy budget.

1. Calibrate **once** (on the calibration part of the data, :mod:`onnxq.accuracy.held_out`); every
   trial converts that same calibration with another plan (``PreparedModel.plan_for``: the
   prepared QConfigMapping with ``None`` for each layer kept float). When that plan would observe
   a tensor the calibration did not (a pass-through op whose neighbour went float starts a tensor
   group of its own), the prepared plan with those layers left float (``QuantPlan.leave_float``)
   is used instead, and the report gives :data:`FLOAT_REASON` for them.
2. Convert everything (all-int8) and score it on the held-out samples
   (:mod:`onnxq.accuracy.metrics`). If it meets the budget, nothing stays float.
3. Rank the quantized layers (the plan's quantized nodes: fusion-group anchors and standalone ops)
   by sensitivity. ``ranking="introduced"`` (the default) runs :func:`onnxq.compare.compare` once
   on the held-out samples and ranks each layer by the lowest SQNR its outputs' Q/DQ *introduce*
   given exact fp32 inputs: one extra run whatever the number of layers, and the error measured
   where it arises rather than mixed with everything upstream. ``ranking="measured"`` scores the
   model with each layer alone kept float (one conversion per layer) and ranks by the score
   gained: slower, but it sees what the metric sees (a layer whose error the argmax ignores).
4. Greedy: keep layers float in rank order until the budget is met.
5. Prune: try putting back each float layer, least sensitive first; a layer stays int8 when the
   budget is still met without it. The set left is minimal: no single layer of it can be removed.

**Fallback precision.** ``fallback="float"`` (the default) maps the layers kept back to ``None``
(float). ``fallback="int16"`` maps them to their own QConfig at 16 bits instead (:func:`widened`:
int8 -> int16, uint8 -> uint16, the same symmetry, observer and granularity, no reduce_range), so
the model stays a Q/DQ model throughout; the layer's weights and outputs are 16-bit (a layer's
input keeps the spec its producer gives it). 16-bit QuantizeLinear/DequantizeLinear are opset 21
(stock onnxruntime runs them, computing the layer in float between them), so the model is
prepared at opset 21 at least (``prepare(..., min_opset=21)``). Observers are the same, so the
one calibration serves every trial here too.

When no configuration meets the budget (a callable metric whose floor even fp32 does not reach),
the result is the best trial (highest score, then fewest float layers) with ``met=False``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import onnx

from onnxq.accuracy.held_out import Runs, read_runs, run_outputs, split_runs
from onnxq.accuracy.metrics import RESAMPLES, Estimate, Metric, MetricFn, metric_named
from onnxq.api import ModelSource, PreparedModel, QConfigLike, prepare
from onnxq.errors import OnnxqError
from onnxq.graph import opset_version
from onnxq.planning.plan import QuantPlan
from onnxq.qconfig import QConfig, QConfigMapping, QSpec
from onnxq.report import QuantizationReport
from onnxq.targets import DEFAULT_TARGET

logger = logging.getLogger(__name__)

RANKINGS = ("introduced", "measured")
FALLBACKS = ("float", "int16")
#: The opset 16-bit Q/DQ need (the int16 fallback).
INT16_OPSET = 21
_WIDER = {"int4": "int16", "int8": "int16", "uint4": "uint16", "uint8": "uint16"}
#: Why a layer stays float, in the report, when the QConfigMapping's plan could not be used.
FLOAT_REASON = "kept float to meet the accuracy budget"


@dataclass(frozen=True)
class BudgetResult:
    """The outcome of :func:`fit_budget`.

    Attributes:
        model: The chosen QDQ model (the best found when ``met`` is False).
        report: Its quantization report (the float layers say "mapped to None").
        mapping: The QConfigMapping that gives it again (``--qconfig`` as JSON: ``mapping.to_dict()``).
        float_layers: The layers kept float, most sensitive first.
        met: Whether the model meets the budget.
        metric, budget, threshold: The metric's name, the budget and the least score it allows.
        fp32, all_int8, final: The metric on the held-out samples, with its bootstrap interval.
        ranking: Every quantized layer of the all-int8 model with its sensitivity, most sensitive
            first (introduced SQNR in dB, or the score gained kept float).
        trials: Conversions scored (all-int8 included).
        resamples: Bootstrap resamples of each interval.
    """

    model: onnx.ModelProto
    report: QuantizationReport
    mapping: QConfigMapping
    float_layers: tuple[str, ...]
    met: bool
    metric: str
    budget: float
    threshold: float
    fp32: Estimate
    all_int8: Estimate
    final: Estimate
    ranking: tuple[tuple[str, float], ...]
    ranked_by: str
    trials: int
    resamples: int
    fallback: str = "float"

    def summary(self) -> str:
        """One line: what was chosen and what it scores."""
        f = self.final
        kept = ", ".join(self.float_layers) if self.float_layers else "none"
        verdict = "meets" if self.met else "does NOT meet"
        return (
            f"accuracy budget {self.budget:g} ({self.metric} >= {self.threshold:g}): {verdict} it with "
            f"{len(self.float_layers)} layer(s) kept {self._kept_as} ({kept}); {self.metric} {f.value:.4g} "
            f"[{f.low:.4g}, {f.high:.4g}] on {f.samples} held-out samples "
            f"(all-int8 {self.all_int8.value:.4g}, {self.trials} trials)"
        )

    @property
    def _kept_as(self) -> str:
        return "at 16 bit" if self.fallback == "int16" else "float"

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "budget": self.budget,
            "threshold": self.threshold,
            "met": self.met,
            "fallback": self.fallback,
            "float_layers": list(self.float_layers),
            "fp32": self.fp32.to_dict(),
            "all_int8": self.all_int8.to_dict(),
            "final": self.final.to_dict(),
            "bootstrap_resamples": self.resamples,
            "ranked_by": self.ranked_by,
            "ranking": [
                {"layer": n, "sensitivity": v if math.isfinite(v) else None} for n, v in self.ranking
            ],
            "trials": self.trials,
        }


def widened(qc: QConfig) -> QConfig:
    """``qc`` at 16 bits (module docstring: fallback precision); float activations stay float."""

    def wide(spec: QSpec | None) -> QSpec | None:
        if spec is None:
            return None
        return replace(spec, dtype=_WIDER.get(spec.dtype, spec.dtype), reduce_range=False)

    weight = wide(qc.weight)
    assert weight is not None
    return QConfig(wide(qc.activation), weight, qc.fixed_ranges)


class _Trials:
    """Converts the calibrated model with a set of float layers and scores it; caches by set."""

    def __init__(
        self, prepared: PreparedModel, runs: Runs, metric: Metric, fallback: str = "float"
    ) -> None:
        if prepared.mapping is None:
            raise OnnxqError("the prepared model has no QConfigMapping to keep layers float with")
        self.prepared, self.runs, self.metric, self.fallback = prepared, runs, metric, fallback
        self.op_types = {node.name: node.op_type for node in prepared.model.graph.all_nodes()}
        self.reference = run_outputs(prepared.model, runs, "float model")
        self.scores: dict[frozenset[str], float] = {}
        self.kept: dict[frozenset[str], tuple[onnx.ModelProto, QuantizationReport, list[np.ndarray]]] = {}

    def mapping(self, float_layers: Iterable[str]) -> QConfigMapping:
        mapping = self.prepared.mapping
        assert mapping is not None
        for name in sorted(float_layers):
            qc = mapping.qconfig_for(name, self.op_types.get(name, ""))
            mapping = mapping.set_node_name(name, widened(qc) if self.fallback == "int16" and qc else None)
        return mapping

    def plan(self, float_layers: frozenset[str]) -> QuantPlan:
        """The mapping's plan; the prepared plan with the layers left float when the mapping's
        would observe a tensor the calibration did not (a pass-through op whose neighbour went
        float can start a tensor group of its own)."""
        plan = self.prepared.plan_for(self.mapping(float_layers))
        calibration = self.prepared.calibration
        assert calibration is not None
        if set(plan.observed_values()) <= set(calibration.observers):
            return plan
        logger.info("%s: the mapping's plan needs new observers; left float in place", sorted(float_layers))
        if self.fallback == "int16":
            logger.warning(
                "%s: kept float, not at 16 bit (the plan would need new observers)", sorted(float_layers)
            )
        return self.prepared.plan.leave_float({n: FLOAT_REASON for n in float_layers})

    def score(self, float_layers: frozenset[str]) -> float:
        if float_layers not in self.scores:
            plan = self.plan(float_layers)
            model = self.prepared.convert(plan=plan)
            report = self.prepared.report
            got = run_outputs(model, self.runs, "quantized model")
            self.scores[float_layers] = self.metric.score(self.reference, got)
            self.kept[float_layers] = (model, report, got)
            logger.info(
                "%d layer(s) float: %s %.4g", len(float_layers), self.metric.name, self.scores[float_layers]
            )
        return self.scores[float_layers]

    def meets(self, float_layers: frozenset[str]) -> bool:
        return self.metric.meets(self.score(float_layers))


def _rank(trials: _Trials, layers: tuple[str, ...], ranking: str) -> list[tuple[str, float]]:
    """Layers with their sensitivity, most sensitive first (module docstring, step 3)."""
    if ranking == "measured":
        base = trials.score(frozenset())
        gains = {name: trials.score(frozenset([name])) - base for name in layers}
        return sorted(gains.items(), key=lambda kv: -kv[1])
    from onnxq.compare import compare

    model, _, _ = trials.kept[frozenset()]
    report = compare(trials.prepared.model, model, [feed for feed, _ in trials.runs])
    introduced = {layer.tensor: layer.introduced.sqnr_db for layer in report.layers}
    plan = trials.prepared.plan
    outputs = {n: plan.outputs.get(n, ()) for n in layers}
    sqnr = {n: min((introduced.get(v, math.inf) for v in o), default=math.inf) for n, o in outputs.items()}
    return sorted(sqnr.items(), key=lambda kv: kv[1])


def _search(trials: _Trials, ranked: list[str]) -> tuple[frozenset[str], bool]:
    """Greedy in rank order, then put back what is not needed (module docstring, steps 4-5)."""
    chosen: list[str] = []
    for name in ranked:
        chosen.append(name)
        if trials.meets(frozenset(chosen)):
            break
    else:
        best = max(trials.scores, key=lambda s: (trials.scores[s], -len(s)))
        return best, False
    kept = set(chosen)
    for name in reversed(chosen):
        if trials.meets(frozenset(kept - {name})):
            kept.discard(name)
            logger.info("put back in int8: %s", name)
    return frozenset(kept), True


def fit_budget(
    prepared: PreparedModel,
    data: Iterable[object],
    budget: float,
    *,
    metric: str | MetricFn = "top1",
    held_out: Iterable[object] | None = None,
    ranking: str = "introduced",
    tolerance: float | None = None,
    resamples: int = RESAMPLES,
    seed: int = 0,
    progress: bool = False,
    fallback: str = "float",
) -> BudgetResult:
    """Calibrate ``prepared`` once on ``data`` and keep the fewest layers float that meet ``budget``.

    Args:
        prepared: From :func:`onnxq.prepare`, not calibrated yet.
        data: Calibration data (anything ``calibrate`` takes); without ``held_out``, every 5th
            sample of it is held out for the metric (:mod:`onnxq.accuracy.held_out`).
        budget: ``top1``: points of agreement lost; ``sqnr``: least dB; a callable: least score
            (:mod:`onnxq.accuracy.metrics`).
        metric: ``"top1"``, ``"sqnr"`` or ``metric(float_outputs, quant_outputs) -> float``.
        held_out: Samples to measure on, instead of a split of ``data``.
        ranking: ``"introduced"`` or ``"measured"`` (module docstring).
        tolerance: The CI half-width to estimate the samples needed for (default: per metric).
        resamples: Bootstrap resamples.
        fallback: ``"float"`` or ``"int16"``: what the layers kept back become (module docstring);
            ``int16`` needs ``prepared`` at opset 21 (``prepare(..., min_opset=21)``).
    """
    if ranking not in RANKINGS:
        raise OnnxqError(f"ranking must be one of {', '.join(RANKINGS)}, got {ranking!r}")
    if fallback not in FALLBACKS:
        raise OnnxqError(f"fallback must be one of {', '.join(FALLBACKS)}, got {fallback!r}")
    if fallback == "int16" and opset_version(prepared.model) < INT16_OPSET:
        raise OnnxqError(
            f"fallback int16 needs the model at opset {INT16_OPSET} (16-bit Q/DQ): prepare it with "
            f"min_opset={INT16_OPSET}"
        )
    if resamples < 1:
        raise OnnxqError(f"resamples must be at least 1, got {resamples}")
    chosen_metric = metric_named(metric, budget, tolerance)
    if held_out is None:
        calib_runs, runs = split_runs(prepared.model, data)
        calib_data: Iterable[object] = [feed for feed, _ in calib_runs]
    else:
        runs, calib_data = read_runs(prepared.model, held_out), data
    prepared.calibrate(calib_data, progress=progress)
    trials = _Trials(prepared, runs, chosen_metric, fallback)
    trials.score(frozenset())
    layers = trials.prepared.plan_for(trials.mapping(())).quantized_nodes()
    if ranking == "introduced" and not trials.prepared.plan.observed_values():
        # weight-only (a transformer's default): no activation Q/DQ for compare to match
        logger.info("no activation is quantized: layers are ranked by measurement")
        ranking = "measured"
    ranked = _rank(trials, layers, ranking)
    logger.info("most sensitive layers: %s", ", ".join(f"{n} ({v:.3g})" for n, v in ranked[:5]))
    if trials.meets(frozenset()):
        float_layers, met = frozenset[str](), True
    else:
        float_layers, met = _search(trials, [n for n, _ in ranked])
    model, report, got = trials.kept[float_layers]
    order = [n for n, _ in ranked]

    def estimate(outputs: list[np.ndarray]) -> Estimate:
        return chosen_metric.estimate(trials.reference, outputs, resamples, seed)

    result = BudgetResult(
        model=model,
        report=report,
        mapping=trials.mapping(float_layers),
        float_layers=tuple(sorted(float_layers, key=order.index)),
        met=met,
        metric=chosen_metric.name,
        budget=chosen_metric.budget,
        threshold=chosen_metric.threshold,
        fp32=estimate(trials.reference),
        all_int8=estimate(trials.kept[frozenset()][2]),
        final=estimate(got),
        ranking=tuple(ranked),
        ranked_by=ranking,
        trials=len(trials.scores),
        resamples=resamples,
        fallback=fallback,
    )
    (logger.info if met else logger.warning)("%s", result.summary())
    return result


def quantize_with_budget(
    model: ModelSource,
    data: Iterable[object],
    budget: float,
    qconfig: QConfigLike = None,
    *,
    target: str = DEFAULT_TARGET,
    **options: Any,
) -> BudgetResult:
    """``prepare(model, qconfig, target=target)`` (at opset 21 for ``fallback="int16"``) then
    :func:`fit_budget` (its ``options``)."""
    min_opset = INT16_OPSET if options.get("fallback") == "int16" else None
    return fit_budget(prepare(model, qconfig, target=target, min_opset=min_opset), data, budget, **options)


__all__ = [
    "FALLBACKS",
    "INT16_OPSET",
    "RANKINGS",
    "BudgetResult",
    "fit_budget",
    "quantize_with_budget",
    "widened",
]
