"""The shape every dynamic-quantization pass shares: rewrite the nodes a plan gives one action.

A :class:`PlannedRewrite` is built with the :class:`~onnxq.planning.dynamic.DynamicPlan` (or a
:class:`~onnxq.planning.weight_only.WeightOnlyPlan`: any plan whose ``planned(action)`` gives
the decisions of one action, each with the node's ``name``); called on
the prepared model, it finds each main-graph node the plan gives its ``action`` and hands it to
:meth:`PlannedRewrite.rewrite`, with one name authority and one cache (a weight read by several
nodes is stored once) for the whole run, then sorts the graph.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import onnx_ir as ir

from onnxq.graph import NameAuthority
from onnxq.passes.base import GraphPass, PassResult

logger = logging.getLogger(__name__)


class Plan(Protocol):
    format: Any

    def planned(self, *actions: Any) -> tuple[Any, ...]: ...


class PlannedRewrite(GraphPass):
    """Rewrite every node ``plan`` gives ``action`` (subclasses implement :meth:`rewrite`)."""

    action: Any  # the plan's action enum member this rewrite owns

    def __init__(
        self,
        plan: Plan,
        method: str = "rtn",
        hessians: Mapping[str, np.ndarray] | None = None,
        *,
        mse_scales: bool = False,
    ) -> None:
        self.plan = plan
        self.method = method  # the weight method that rounds weights (weight-only passes)
        self.hessians = dict(hessians or {})  # by node name: input Hessians for methods like gptq
        self.mse_scales = mse_scales  # weight-only: scales by least squared error (clip_search)
        self.cache: dict[Any, Any] = {}

    def call(self, model: ir.Model) -> PassResult:
        names, self.cache = NameAuthority(model.graph), {}
        nodes = {node.name: node for node in model.graph}
        count = sum(self.rewrite(model, names, nodes[d.name], d) for d in self.plan.planned(self.action))
        model.graph.sort()
        logger.info("%s: %d rewrite(s)", self.name, count)
        return PassResult(model, count)

    def rewrite(self, model: ir.Model, names: NameAuthority, node: ir.Node, decision: Any) -> int:
        """Rewrite ``node`` (new names from ``names``); return how many rewrites that made."""
        raise NotImplementedError


__all__ = ["Plan", "PlannedRewrite"]
