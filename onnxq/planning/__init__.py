"""Planning: what gets quantized, decided on the prepared fp32 graph before any data is seen.

* :mod:`~onnxq.planning.ops` — the op table: everything one op needs to know (:class:`OpRule`);
* :mod:`~onnxq.planning.fusion` — fusion groups (an op, its bias Add and activation as one unit);
* :mod:`~onnxq.planning.plan` — the plan: per node quantized or float and why, what to observe;
* :mod:`~onnxq.planning.tensor_groups` — tensors that share one scale and zero point;
* :mod:`~onnxq.planning.pass_through` — which shape ops are worth quantizing;
* :mod:`~onnxq.planning.element_types` — element types of values, to tell float from the rest.

Nothing here imports from :mod:`onnxq.passes` or :mod:`onnxq.calibration`.
"""

from onnxq.planning.fusion import FusionGroup, fusion_groups
from onnxq.planning.ops import OpRule, QuantKind, get_rule, register_op
from onnxq.planning.plan import NodeDecision, QuantPlan, build_plan
from onnxq.planning.weight_plan import WeightPlan

__all__ = [
    "FusionGroup",
    "NodeDecision",
    "OpRule",
    "QuantKind",
    "QuantPlan",
    "WeightPlan",
    "build_plan",
    "fusion_groups",
    "get_rule",
    "register_op",
]
