"""The ``onnxq quantize`` and ``onnxq lower`` commands: options checked, the model converted, the
model and its report written atomically (the model loaded by onnxruntime before it is moved into
place), and a summary printed. The ``quantize`` options are declared here
(:func:`add_quantize_parser`); :mod:`onnxq.cli` builds the parser and maps errors to exit
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
    import onnx_ir as ir

    from onnxq.lower import Lowering
    from onnxq.report import QuantizationReport


def add_quantize_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """The ``quantize`` subcommand's parser and its options (``parents``: the shared option groups)."""
    q = sub.add_parser("quantize", parents=parents, help="static post-training quantization to QDQ ONNX")
    q.add_argument("model", type=Path, help="fp32 .onnx model")
    q.add_argument("-o", "--output", type=Path, required=True, help="where to write the int8 model")
    q.add_argument(
        "--stats",
        type=Path,
        default=None,
        help="a calibration file from 'onnxq calibrate' or 'onnxq merge-stats', instead of --calib",
    )
    q.add_argument("--report", type=Path, help="write the quantization report as JSON here")
    q.add_argument(
        "--bias-correction",
        action="store_true",
        help="correct each Conv/Gemm bias for the mean output shift of its weight's rounding, from "
        "the layer inputs' means over --calib (not with --stats)",
    )
    q.add_argument(
        "--smooth-quant",
        metavar="ALPHA",
        nargs="?",
        type=float,
        const=0.5,
        default=None,
        help="SmoothQuant: move LayerNorm outputs' outlier channels into the following matmul weights "
        "(strength ALPHA in [0, 1], default 0.5; reads --calib twice, not with --stats)",
    )
    q.add_argument(
        "--weight-method",
        default="rtn",
        help="how weights are rounded: rtn (nearest, default) or adaround (learned on --calib)",
    )
    q.add_argument(
        "--adaround-config",
        type=Path,
        metavar="JSON",
        default=None,
        help="with --weight-method adaround: its settings as a JSON object (schemas/adaround.schema.json: "
        'e.g. {"solver": "adam", "iterations": 100, "rows": 512})',
    )
    q.add_argument(
        "--adaround-iters",
        type=int,
        metavar="N",
        default=None,
        help="with --weight-method adaround: at most N sweeps (solver descent, the default) or N "
        "steps (solver adam) per layer",
    )
    q.add_argument(
        "--external-data",
        action="store_true",
        help="store tensors in <output>.data beside the model (automatic above 2 GB)",
    )
    q.add_argument(
        "--format",
        choices=("qdq", "qdq-uint8", "onnxruntime", "onnxq"),
        default="qdq",
        help="qdq: standard ops, runs on any onnxruntime (default); qdq-uint8: the same with every "
        "int8 tensor stored as uint8, exact on onnxruntime on every CPU (its uint8 x int8 kernels "
        "saturate on x86 without VNNI); onnxruntime (--mode dynamic): onnxruntime's contrib ops "
        "DynamicQuantizeMatMul and DynamicQuantizeLSTM; onnxq: onnxq's kernels as custom ops where "
        "they apply (run with onnxq.runtime.InferenceSession; --mode dynamic: MatMul/Gemm only, for now; "
        "--mode weight-only: 4-bit MatMul/Gemm on onnxq's int4 kernel, activations int8 per row)",
    )
    q.add_argument(
        "--mode",
        choices=("static", "dynamic", "weight-only"),
        default="static",
        help="static: activations quantized with calibrated ranges (default); dynamic: weights int8, "
        "activations quantized at run time, no calibration data; weight-only: weights int8 or 4-bit, "
        "activations float, no calibration data",
    )
    q.add_argument(
        "--weight-dtype",
        choices=("int8", "uint8", "int4", "uint4"),
        default=None,
        help="with --mode dynamic: uint8 stores the int8 weights as uint8, the same model exact on "
        "onnxruntime on x86 without VNNI, in either format (--format qdq-uint8 is qdq with uint8); "
        "with --mode weight-only: int8 (per channel), int4 (default) or uint4 (per block)",
    )
    q.add_argument(
        "--reduce-range",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with --mode dynamic: 7-bit weights (symmetric [-63, 63]) for the integer matmuls, "
        "exact and fast on x86 without VNNI (onnxruntime's and onnxq's kernels), one bit less "
        "precise everywhere; the default without --qconfig (a --qconfig's weight specs decide)",
    )
    q.add_argument(
        "--block-size", type=int, default=None, help="with --mode weight-only: 4-bit block size (default 32)"
    )
    q.add_argument(
        "--method",
        default=None,
        help="with --mode weight-only: rtn (round to nearest, the default) or gptq (needs --calib)",
    )
    q.add_argument(
        "--scale-search",
        choices=("mse", "minmax"),
        default=None,
        help="with --mode weight-only: each block's scale by least squared rounding error over "
        "clipping ratios (mse, the default) or from the block's full range (minmax)",
    )
    q.add_argument(
        "--sequential",
        action="store_true",
        help="with --method gptq: each layer's Hessian from the outputs of the layers quantized "
        "before it (one calibration pass per stage of layers)",
    )
    q.add_argument(
        "--accuracy-budget",
        type=float,
        metavar="B",
        default=None,
        help="keep the fewest layers float that meet B on held-out data (docs/accuracy.md): with "
        "--metric top1, B points of top-1 agreement with fp32 may be lost; with sqnr, B is the least "
        "output SQNR in dB. Exit status 1 (model and report still written) when no choice meets it",
    )
    q.add_argument("--metric", choices=("top1", "sqnr"), default="top1", help="with --accuracy-budget")
    q.add_argument(
        "--fallback",
        choices=("float", "int16"),
        default=None,
        help="with --accuracy-budget: what the layers kept back become: float (default) or 16-bit Q/DQ "
        "(int16 weights, 16-bit outputs; the model is then opset 21)",
    )
    q.add_argument(
        "--held-out",
        type=Path,
        default=None,
        help="with --accuracy-budget: data to measure on, as --calib (default: every 5th --calib sample)",
    )
    q.add_argument(
        "--ranking",
        choices=("introduced", "measured"),
        default="introduced",
        help="with --accuracy-budget: rank layers by the SQNR they introduce (one run) or by the metric "
        "with each alone kept float (one conversion per layer)",
    )
    q.add_argument(
        "--op-types",
        metavar="OPS",
        default=None,
        help="with --mode dynamic: the op types to quantize, comma-separated (default: MatMul, Gemm, "
        "LSTM, GRU, RNN, Conv, ConvTranspose, Gather)",
    )


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
    if args.scale_search is not None and args.mode != "weight-only":
        raise OnnxqError("--scale-search applies to --mode weight-only")
    if args.sequential and args.method != "gptq":
        raise OnnxqError("--sequential applies to --mode weight-only --method gptq")
    if args.mode == "dynamic":
        from onnxq.cli_dynamic import convert_dynamic_from_args

        conversion = convert_dynamic_from_args(args, outputs)
        _write_quantized(args, conversion.model, conversion.report, None)
        return EXIT_OK
    if args.mode == "weight-only":
        from onnxq.cli_weight_only import convert_weight_only_from_args

        conversion = convert_weight_only_from_args(args, outputs)
        _write_quantized(args, conversion.ir_model, conversion.report, None)  # any size
        return EXIT_OK
    dynamic_only = {
        "--format onnxruntime": args.format == "onnxruntime",
        "--op-types": args.op_types is not None,
        "--weight-dtype": args.weight_dtype is not None,
        "--reduce-range / --no-reduce-range": args.reduce_range is not None,
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
    qmodel: onnx.ModelProto | ir.Model,
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
    weight_only = args.mode == "weight-only"  # no integer matmuls: dequantized weights, float ops
    if args.format in ("qdq", "onnxruntime") and not weight_only and (dynamic or args.target != "x86-avx2"):
        from onnxq.passes.uint8_twin import saturates_here

        if saturates_here(qmodel):
            print(
                "note: onnxruntime on this CPU (x86 without VNNI) sums uint8 x int8 products in 16 bits "
                "with saturation; for the model's exact results there use "
                + ("--reduce-range (7-bit weights) or --weight-dtype uint8" if dynamic
                   else "--format qdq-uint8, or --target x86-avx2")
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


__all__ = ["add_quantize_parser", "lower_command", "quantize_command"]
