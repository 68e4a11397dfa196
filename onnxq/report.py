"""The quantization report: what was quantized, what stayed float and why, what calibration missed.

Built from the plan (one entry per node, and the graph outputs of quantized nodes kept float by
``prepare(..., float_outputs=True)``), the calibration statistics (tensors no sample reached,
NaN/Inf counts, number of samples) and the notes of the structural passes. ``to_dict`` is
JSON-serialisable; ``format`` is the text the CLI prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from onnxq.planning.dynamic import DynamicPlan
from onnxq.planning.plan import QuantPlan


@dataclass(frozen=True)
class NodeEntry:
    """One node of the prepared model: quantized (``reason`` None) or float and why.

    ``kind`` is the quantization kind of a supported op; ``fused_into`` names the fusion-group
    anchor of an absorbed node (bias Add, activation).
    """

    name: str
    op_type: str
    kind: str | None
    reason: str | None
    fused_into: str | None = None

    @property
    def quantized(self) -> bool:
        return self.reason is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "op_type": self.op_type,
            "quantized": self.quantized,
            "kind": self.kind,
            "reason": self.reason,
            "fused_into": self.fused_into,
        }


@dataclass(frozen=True)
class QuantizationReport:
    """The outcome of one quantization (see the module docstring)."""

    nodes: tuple[NodeEntry, ...]
    unreached: tuple[str, ...] = ()
    nonfinite: Mapping[str, int] = field(default_factory=dict)
    num_samples: int = 0
    pass_notes: tuple[str, ...] = ()
    mode: str = "static"
    #: Graph outputs of quantized nodes left float (``float_outputs=True``), in graph order.
    float_outputs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in ("static", "dynamic", "weight_only"):
            raise ValueError(f"mode must be 'static', 'dynamic' or 'weight_only', got {self.mode!r}")
        if self.num_samples < 0:
            raise ValueError(f"num_samples must be >= 0, got {self.num_samples}")
        if any(count <= 0 for count in self.nonfinite.values()):
            raise ValueError("nonfinite counts must be positive (omit tensors without NaN/Inf)")
        object.__setattr__(self, "nonfinite", dict(self.nonfinite))

    @property
    def quantized(self) -> tuple[NodeEntry, ...]:
        """Nodes quantized (fusion anchors and absorbed nodes included)."""
        return tuple(n for n in self.nodes if n.quantized)

    @property
    def float_nodes(self) -> tuple[NodeEntry, ...]:
        """Nodes left in float, each with its reason."""
        return tuple(n for n in self.nodes if not n.quantized)

    def op_counts(self) -> dict[str, tuple[int, int]]:
        """``{op_type: (quantized, float)}``, sorted by op type."""
        counts: dict[str, list[int]] = {}
        for n in self.nodes:
            counts.setdefault(n.op_type, [0, 0])[0 if n.quantized else 1] += 1
        return {op: (q, f) for op, (q, f) in sorted(counts.items())}

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "num_samples": self.num_samples,
            "nodes": [n.to_dict() for n in self.nodes],
            "op_counts": {op: {"quantized": q, "float": f} for op, (q, f) in self.op_counts().items()},
            "unreached": list(self.unreached),
            "nonfinite": dict(self.nonfinite),
            "pass_notes": list(self.pass_notes),
            "float_outputs": list(self.float_outputs),
        }

    def format(self, max_float: int = 50) -> str:
        """A human-readable summary, at most ``max_float`` float-node lines."""
        q, f = len(self.quantized), len(self.float_nodes)
        data = {
            "dynamic": "dynamic: activations quantized at run time, no calibration",
            "weight_only": "weight-only: activations stay float, no calibration",
        }.get(self.mode, f"calibrated on {self.num_samples} samples")
        lines = [f"quantized {q} of {q + f} nodes; {data}"]
        for op, (nq, nf) in self.op_counts().items():
            lines.append(f"  {op:<24} {nq:>5} quantized {nf:>5} float")
        if self.float_nodes:
            lines.append("left in float:")
            lines += [f"  {n.name} ({n.op_type}): {n.reason}" for n in self.float_nodes[:max_float]]
            if f > max_float:
                lines.append(f"  ... and {f - max_float} more")
        if self.float_outputs:
            lines.append(f"graph outputs kept float (float_outputs): {', '.join(self.float_outputs)}")
        if self.unreached:
            lines.append(f"tensors no calibration sample reached: {', '.join(self.unreached)}")
        if self.nonfinite:
            total = sum(self.nonfinite.values())
            top = sorted(self.nonfinite.items(), key=lambda kv: -kv[1])[:5]
            worst = ", ".join(f"{k} ({v})" for k, v in top)
            lines.append(
                f"NaN/Inf values ignored in calibration: {total} in {len(self.nonfinite)} tensors: {worst}"
            )
        lines += [f"note: {note}" for note in self.pass_notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def build_report(
    plan: QuantPlan,
    *,
    unreached: frozenset[str] | set[str] = frozenset(),
    nonfinite: Mapping[str, int] | None = None,
    num_samples: int = 0,
    pass_notes: tuple[str, ...] = (),
) -> QuantizationReport:
    """The report of ``plan`` with the given calibration statistics."""
    nodes = tuple(
        NodeEntry(d.name, d.op_type, d.kind.value if d.kind is not None else None, d.reason, d.anchor)
        for d in plan.decisions
    )
    return QuantizationReport(
        nodes=nodes,
        unreached=tuple(sorted(unreached)),
        nonfinite={k: v for k, v in sorted((nonfinite or {}).items()) if v > 0},
        num_samples=num_samples,
        pass_notes=tuple(pass_notes),
        float_outputs=tuple(v for d in plan.decisions for v in plan.float_outputs.get(d.name, ())),
    )


def build_dynamic_report(plan: DynamicPlan, pass_notes: tuple[str, ...] = ()) -> QuantizationReport:
    """The report of a dynamic quantization: per node what it became (``kind``: dynamic_matmul,
    dynamic_lstm, weight_only) or why it stayed float, and the plan's and passes' notes."""
    return build_planned_report(plan, pass_notes, "dynamic")


def build_planned_report(plan: Any, pass_notes: tuple[str, ...], mode: str) -> QuantizationReport:
    """The report of a plan of per-node decisions (dynamic or weight-only: each with ``name``,
    ``op_type``, ``action``, ``reason``, ``anchor``) and its ``notes``, in ``mode``."""
    nodes = tuple(
        NodeEntry(d.name, d.op_type, None if d.action is None else d.action.value, d.reason, d.anchor)
        for d in plan.decisions
    )
    return QuantizationReport(nodes=nodes, pass_notes=(*plan.notes, *pass_notes), mode=mode)


__all__ = ["NodeEntry", "QuantizationReport", "build_dynamic_report", "build_planned_report", "build_report"]
