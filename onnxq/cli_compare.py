"""``onnxq compare``: per-layer error of a quantized model against its fp32 model.

Reads both models and ``--calib`` as ``quantize`` does, refuses outputs that are inputs, runs
:func:`onnxq.compare.compare` and writes ``--html`` and ``--json`` together (both or neither).
"""

from __future__ import annotations

import argparse
import math

from onnxq.compare.report import ComparisonReport
from onnxq.errors import OnnxqError

#: Layers the summary line lists.
SUMMARY_LAYERS = 5


def compare_command(args: argparse.Namespace) -> str:
    """Run the comparison the arguments ask for; returns the summary to print."""
    from onnxq.calibration.sources import load_calibration_data
    from onnxq.cli_stats import check_output_dirs
    from onnxq.compare import compare
    from onnxq.compare.writers import write_report
    from onnxq.io import check_outputs_apart, external_data_files, load_model

    if args.limit is not None and args.limit < 1:
        raise OnnxqError(f"--limit must be at least 1, got {args.limit}")
    check_output_dirs(html=args.html, json=args.json)
    fp32 = load_model(args.model, what="float model")
    qdq = load_model(args.quantized, what="quantized model")
    calib = load_calibration_data(args.calib, preprocess=args.preprocess)
    check_outputs_apart(
        {"html report": args.html, "json report": args.json},
        {
            "float model": [args.model, *external_data_files(fp32)],
            "quantized model": [args.quantized, *external_data_files(qdq)],
            "calibration data": list(calib.files),
        },
    )
    report = compare(fp32, qdq, calib, limit=args.limit)
    title = f"onnxq compare: {args.quantized.name}"
    write_report(report, html=args.html, json_path=args.json, title=title)
    written = [str(p) for p in (args.html, args.json) if p is not None]
    return format_summary(report) + (f"\nwrote {', '.join(written)}" if written else "")


def _db(value: float) -> str:
    return "exact" if math.isinf(value) and value > 0 else f"{value:.2f} dB"


def format_summary(report: ComparisonReport, layers: int = SUMMARY_LAYERS) -> str:
    """The layers that introduce the most error, one line each."""
    lines = [
        f"{len(report.layers)} quantized tensors compared on {report.num_samples} samples; "
        "most error introduced by:"
    ]
    for layer in report.ranked()[:layers]:
        lines.append(
            f"  {layer.tensor} ({layer.op_type}): introduced {_db(layer.introduced.sqnr_db)}, "
            f"accumulated {_db(layer.accumulated.sqnr_db)}"
        )
    return "\n".join(lines)


__all__ = ["compare_command", "format_summary"]
