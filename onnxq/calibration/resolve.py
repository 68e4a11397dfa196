"""From calibration statistics to quantization parameters, for a :class:`~onnxq.planning.plan.QuantPlan`.

* :func:`make_observers`: one observer per observed value, as its activation QSpec says;
* :func:`resolve_qparams`: each tensor group's scale/zero point from the merge of its members'
  observers (``merge`` is exact for min/max and histograms: the union of what each saw), plus
  its constant members' values (the groups in parallel: the range searches run in native
  code); fixed-range groups get their fixed parameters — a group fixed
  "when filled" only when the range its observers chose spans at least :data:`FILL` of the known
  range (or nothing reached it), else the observed parameters: a wake-word Sigmoid whose
  probabilities stay below 0.02 keeps them instead of rounding them to 0;
* :func:`drop_unreached`: nodes touching a group that no calibration sample reached stay float.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import reduce
from typing import NamedTuple

import numpy as np
import onnx_ir as ir

from onnxq.calibration.observers import Observer, make_observer
from onnxq.calibration.result import CalibrationResult
from onnxq.errors import CalibrationDataError
from onnxq.graph import constant_array
from onnxq.planning.plan import QuantPlan
from onnxq.planning.tensor_groups import values_by_name
from onnxq.qparams import QParams, fixed_qparams, qrange

#: The share of a known output range an observed range must span for the known one to be used.
FILL = 0.9


class ActivationQParams(NamedTuple):
    """The activation stage's result: parameters by tensor-group index of the plan, and the
    observed tensors no calibration sample reached (their groups have no entry)."""

    groups: Mapping[int, QParams]
    unreached: frozenset[str]


#: Threads computing the groups' parameters: one per core, at most 8.
SEARCH_THREADS = max(1, min(8, os.cpu_count() or 1))


def make_observers(plan: QuantPlan) -> dict[str, Observer]:
    """A fresh observer for every observed value, as its activation spec asks."""
    return {
        name: make_observer(spec.observer, None, **spec.observer_args)
        for name, spec in plan.observed_values().items()
    }


def resolve_qparams(
    plan: QuantPlan,
    model: ir.Model,
    calibration: CalibrationResult | Mapping[str, Observer],
    reduce_range_groups: Collection[int] = (),
) -> ActivationQParams:
    """Each group's parameters from its members' observers; and the observed values never reached.

    ``model`` is the prepared model the plan was made on (constant group members are read from
    it). A group whose members were all unreached gets no entry; the groups of
    ``reduce_range_groups`` drop one bit (a saturation audit's verdict). The observers are not
    modified.
    """
    observers = calibration.observers if isinstance(calibration, CalibrationResult) else calibration
    values = values_by_name(model.graph)
    _check_foreign(values, observers)
    missing = sorted(v for g in plan.groups for v in g.observed if v not in observers)
    if missing:
        raise CalibrationDataError(
            f"the calibration result has no observer for {len(missing)} planned tensor(s), e.g. "
            f"{missing[0]!r}: it was made for another model or plan"
        )
    _check_kinds(plan, observers)
    unreached = {v for g in plan.groups for v in g.observed if not observers[v].reached}

    def group_qparams(index: int) -> QParams | None:
        group = plan.groups[index]
        spec = group.spec
        if group.fixed_range is not None and not group.fixed_when_filled:
            return fixed_qparams(group.fixed_range, spec.dtype)
        parts = [copy.deepcopy(observers[v]) for v in group.observed if v not in unreached]
        if group.constants:
            name = spec.observer if group.observed else "minmax"
            const_obs = make_observer(name, None, **(spec.observer_args if group.observed else {}))
            for v in group.constants:
                const_obs.update(np.asarray(constant_array(values[v]), dtype=np.float32))
            parts.append(const_obs)
        if not parts:
            if group.fixed_range is not None:  # fixed "when filled", and nothing reached it
                return fixed_qparams(group.fixed_range, spec.dtype)
            return None
        merged = reduce(lambda a, b: a.merge(b), parts)
        observed = merged.qparams(
            spec.dtype, spec.symmetric, spec.reduce_range or index in reduce_range_groups
        )
        if group.fixed_range is not None and _fills(observed, group.fixed_range):
            observed = fixed_qparams(group.fixed_range, spec.dtype)
        return observed

    # range searches (entropy, MSE) spend their time in native code, which releases the GIL
    with ThreadPoolExecutor(max_workers=SEARCH_THREADS, thread_name_prefix="onnxq-qparams") as pool:
        found = list(pool.map(group_qparams, range(len(plan.groups))))
    result = {index: qp for index, qp in enumerate(found) if qp is not None}
    unreached -= {v for g in plan.groups if g.fixed_range is not None for v in g.observed}
    return ActivationQParams(result, frozenset(unreached))


def _check_foreign(values: Mapping[str, ir.Value], observers: Mapping[str, Observer]) -> None:
    """Calibration made elsewhere (a stats file) holds only tensors of this model."""
    foreign = next((name for name in observers if name not in values), None)
    if foreign is not None:
        raise CalibrationDataError(
            f"the calibration result holds tensor {foreign!r}, which this model does not have: "
            "it was made for another model"
        )


def _check_kinds(plan: QuantPlan, observers: Mapping[str, Observer]) -> None:
    """Every planned tensor was observed the way its spec asks."""
    for name, spec in plan.observed_values().items():
        kind = getattr(observers[name], "kind", spec.observer)
        if kind != spec.observer:
            raise CalibrationDataError(
                f"tensor {name!r} was calibrated with observer {kind!r}, but the qconfig asks for "
                f"{spec.observer!r}: calibrate again with the same qconfig"
            )


def _fills(qp: QParams, fixed_range: tuple[float, float]) -> bool:
    """Whether the range ``qp`` represents spans at least :data:`FILL` of ``fixed_range``."""
    lo, hi = qrange(qp.dtype)
    zp, scale = float(qp.zero_point.astype(np.int64)), float(qp.scale)
    width = (hi - zp) * scale - (lo - zp) * scale
    return width >= FILL * (fixed_range[1] - fixed_range[0])


def drop_unreached(plan: QuantPlan, qparams: Mapping[int, QParams]) -> QuantPlan:
    """Leave in float every quantized node that touches a group without parameters."""
    reasons: dict[str, str] = {}
    for node in plan.quantized_nodes():
        missing = sorted(
            v
            for _, v in (*plan.inputs.get(node, ()), *((0, o) for o in plan.outputs.get(node, ())))
            if plan.group_of[v] not in qparams
        )
        if missing:
            reasons[node] = f"tensor '{missing[0]}' was not reached by any calibration sample"
    return plan.leave_float(reasons) if reasons else plan


__all__ = ["ActivationQParams", "drop_unreached", "make_observers", "resolve_qparams"]
