"""The ``onnxq quantize`` and ``onnxq lower`` commands: options checked, the model converted, the
model and its report written atomically (the model loaded by onnxruntime before it is moved into
place), and a summary printed. :mod:`onnxq.cli` parses the arguments and maps errors to exit
statuses.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from onnxq.cli import EXIT_OK  # this module is imported by onnxq.cli when a command runs
from onnxq.errors import OnnxqError

if TYPE_CHECKING:
    import onnx

    from onnxq.lower import Lowering
    from onnxq.report import QuantizationReport



def quantize_command(args: argparse.Namespace) -> int:
    """``onnxq quantize``: static, dynamic or weight-only; the model and report written atomically."""
    from onnxq.calibration.result import CalibrationResult
    from onnxq.cli_stats import (
        calibrate_from_args,
        check_output_dirs,
        prepare_from_args,
        weight_config_from_args,
    )

    check_output_dirs(output=args.output, report=args.report)
    if args.stats is not None and args.calib is not None:
        raise OnnxqError("give --calib or --stats, not both")
    static_only = {
        "--equalize": args.equalize,
        "--bias-correction": args.bias_correction,
        "--float-outputs": args.float_outputs,
    }
    for option, given in static_only.items():
        if given and args.mode != "static":
            raise OnnxqError(f"{option} applies to --mode static")
    if args.smooth_quant is not None and args.mode != "static":
        raise OnnxqError("--smooth-quant applies to --mode static")
    if args.smooth_quant is not None and args.stats is not None:
        raise OnnxqError("--smooth-quant needs --calib, not --stats: it observes the LayerNorm outputs first")
    if args.bias_correction and args.stats is not None:
        raise OnnxqError("--bias-correction needs --calib, not --stats: it observes the layer inputs' means")
    outputs = {
        "output": args.output,
        "output's external data": _data_file(args.output),
        "report": args.report,
    }
    if args.accuracy_budget is None and args.held_out is not None:
        raise OnnxqError("--held-out applies to --accuracy-budget")
    if args.accuracy_budget is None and args.fallback is not None:
        raise OnnxqError("--fallback applies to --accuracy-budget")
    if args.accuracy_budget is not None and args.mode != "static":
        raise OnnxqError("--accuracy-budget applies to --mode static")
    if args.block_size is not None and args.mode != "weight-only":
        raise OnnxqError("--block-size applies to --mode weight-only")
    if args.method is not None and args.mode != "weight-only":
        raise OnnxqError("--method applies to --mode weight-only")
    if args.mode == "dynamic":
        from onnxq.cli_dynamic import convert_dynamic_from_args

        conversion = convert_dynamic_from_args(args, outputs)
        _write_quantized(args, conversion.model, conversion.report, None)
        return EXIT_OK
    if args.mode == "weight-only":
        from onnxq.cli_weight_only import convert_weight_only_from_args

        conversion = convert_weight_only_from_args(args, outputs)
        _write_quantized(args, conversion.model, conversion.report, None)
        return EXIT_OK
    dynamic_only = {
        "--format onnxruntime": args.format == "onnxruntime",
        "--op-types": args.op_types is not None,
        "--weight-dtype": args.weight_dtype is not None,
    }
    for option, given in dynamic_only.items():
        if given:
            raise OnnxqError(f"{option} applies to --mode dynamic")
    extra, status = None, EXIT_OK
    if args.accuracy_budget is not None:
        from onnxq.cli_fallback import fit_budget_from_args

        qmodel, report, extra, status = fit_budget_from_args(args, outputs)
    else:
        stats_files = [args.stats] if args.stats is not None else []
        prepared, calib = prepare_from_args(args, outputs, {"calibration file": stats_files})
        calibration = None
        if args.stats is not None:
            calibration = CalibrationResult.load(args.stats)
        elif prepared.plan.observed_values():
            calibrate_from_args(args, prepared, calib)
        qmodel = prepared.convert(
            calibration, weight_method=args.weight_method, weight_config=weight_config_from_args(args)
        )
        report = prepared.report
    lowering = None
    if args.format == "onnxq":
        from onnxq.lower import lower

        lowering = lower(qmodel)
        qmodel = lowering.model
    elif args.format == "qdq-uint8":
        from onnxq.passes.uint8_twin import uint8_twin

        qmodel = uint8_twin(qmodel)
    _write_quantized(args, qmodel, report, lowering, extra)
    return status


def _write_quantized(
    args: argparse.Namespace,
    qmodel: onnx.ModelProto,
    report: QuantizationReport,
    lowering: Lowering | None,
    extra: dict[str, object] | None = None,
) -> None:
    """Write the model and the report (with ``extra`` sections; atomically, the model checked by
    onnxruntime), then say what was written and what was quantized."""
    from onnxq.io import atomic_files, save_model

    # the report is written first and moved into place only once the model is saved
    with atomic_files(*([args.report] if args.report else [])) as staged:
        for tmp in staged:
            data = {**report.to_dict(), **(extra or {})}
            tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        save_model(
            qmodel,
            args.output,
            external_data=True if args.external_data else None,
            check=_loads_in_onnxruntime,
        )
    in_bytes, out_bytes = _model_bytes(args.model), _model_bytes(args.output)
    print(f"wrote {args.output} ({_kib(out_bytes)}, {out_bytes / max(in_bytes, 1):.2f}x of {_kib(in_bytes)})")
    print(report.format(max_float=20))
    if lowering is not None:
        _print_lowering(lowering)
    dynamic = args.mode == "dynamic"
    if args.format in ("qdq", "onnxruntime") and (dynamic or args.target != "x86-avx2"):
        from onnxq.passes.uint8_twin import saturates_here

        if saturates_here(qmodel):
            print(
                "note: onnxruntime on this CPU (x86 without VNNI) sums uint8 x int8 products in 16 bits "
                "with saturation; for the model's exact results there use "
                + ("--weight-dtype uint8" if dynamic else "--format qdq-uint8, or --target x86-avx2")
            )
    if args.report:
        print(f"report: {args.report}")


def lower_command(args: argparse.Namespace) -> None:
    """``onnxq lower``: a QDQ or QOperator model onto onnxq's kernels."""
    from onnxq.cli_stats import check_output_dirs
    from onnxq.io import check_outputs_apart, external_data_files, load_model, save_model
    from onnxq.lower import lower

    check_output_dirs(output=args.output)
    model = load_model(args.model)
    check_outputs_apart(
        {"output": args.output, "output's external data": _data_file(args.output)},
        {"input model": [args.model], "input model's external data": external_data_files(model)},
    )
    lowering = lower(model)
    save_model(lowering.model, args.output, check=_loads_in_onnxruntime)
    print(f"wrote {args.output}")
    _print_lowering(lowering)


def _print_lowering(lowering: Lowering) -> None:
    print(f"onnxq kernels: {lowering.lowered} node(s) lowered; run with onnxq.runtime.InferenceSession")
    for note in lowering.notes:
        print(f"  {note}")


def _loads_in_onnxruntime(path: Path) -> None:
    """What onnxq writes runs on stock onnxruntime: refuse to write a model it does not load."""
    from onnxq.runtime import make_session

    make_session(path, what="quantized model (nothing was written)")  # optimised, as deployed



def _data_file(model: Path) -> Path:
    """Where :func:`onnxq.io.save_model` puts a model's external data."""
    return model.with_name(model.name + ".data")


def _model_bytes(path: Path) -> int:
    data = _data_file(path)
    return path.stat().st_size + (data.stat().st_size if data.is_file() else 0)


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1024**2 else f"{n / 1024**2:.1f} MiB"


__all__ = ["lower_command", "quantize_command"]
