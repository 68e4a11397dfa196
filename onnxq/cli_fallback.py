"""``onnxq quantize --accuracy-budget``: the fewest layers kept float that meet a budget.

Prepares the model as the qconfig options say, reads ``--calib`` (and ``--held-out``), runs
:func:`onnxq.accuracy.fallback.fit_budget` and hands back the model, its report, the report's
``accuracy`` section and the exit status: 0 when the budget is met, 1 when no choice meets it
(the best found is still written, and a warning says so in one line); bad input is exit status 2
as everywhere.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onnxq.errors import OnnxqError

if TYPE_CHECKING:
    import onnx

    from onnxq.report import QuantizationReport

#: Exit status when the budget is not met.
EXIT_BUDGET_NOT_MET = 1


def fit_budget_from_args(
    args: argparse.Namespace, outputs: Mapping[str, Path | None]
) -> tuple[onnx.ModelProto, QuantizationReport, dict[str, Any], int]:
    """The model chosen for ``--accuracy-budget``, its report, the ``accuracy`` section and the
    exit status."""
    from onnxq.accuracy.fallback import fit_budget
    from onnxq.calibration.sources import load_calibration_data
    from onnxq.cli_stats import prepare_from_args

    if args.stats is not None:
        raise OnnxqError("--accuracy-budget calibrates on --calib itself; give --calib, not --stats")
    if args.calib is None:
        raise OnnxqError("--accuracy-budget needs --calib (the held-out samples come from it or --held-out)")
    held_out = None
    if args.held_out is not None:
        held_out = load_calibration_data(args.held_out, preprocess=args.preprocess)
    more = {"held-out data": list(held_out.files) if held_out is not None else []}
    prepared, calib = prepare_from_args(args, outputs, more)
    assert calib is not None
    result = fit_budget(
        prepared,
        calib,
        args.accuracy_budget,
        metric=args.metric,
        held_out=held_out,
        ranking=args.ranking,
        progress=not args.no_progress,
        fallback=args.fallback or "float",
    )
    print(result.summary())
    status = 0 if result.met else EXIT_BUDGET_NOT_MET
    return result.model, result.report, {"accuracy": result.to_dict()}, status


__all__ = ["EXIT_BUDGET_NOT_MET", "fit_budget_from_args"]
