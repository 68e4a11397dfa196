"""What ``onnxq quantize``, ``onnxq calibrate`` and ``onnxq merge-stats`` share: the model prepared
as the qconfig options say, calibration as the calibration options say, and the statistics files.

``calibrate`` and ``quantize`` take the same qconfig options, so a statistics file written by one
plans the same observers as the other; ``quantize --stats`` refuses a file whose tensors or
observers do not fit the model and qconfig, naming the first tensor that does not. Shards written
with ``--shard i/N`` merge exactly (``merge-stats``) into what one run over all the data gives.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING

from onnxq.errors import OnnxqError

if TYPE_CHECKING:
    from onnxq.api import PreparedModel
    from onnxq.calibration.images import ImageFolder
    from onnxq.calibration.result import CalibrationResult
    from onnxq.calibration.sources import CalibrationFiles


def parent(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def check_output_dirs(**outputs: Path | None) -> None:
    """Each output's directory exists and the output itself is not a directory (one-line errors)."""
    for what, path in outputs.items():
        if path is None:
            continue
        if not parent(path).is_dir():
            raise OnnxqError(f"{what} '{path}': directory '{parent(path)}' does not exist")
        if path.is_dir():
            raise OnnxqError(f"{what} '{path}' is a directory; give a file name")


def prepare_from_args(
    args: argparse.Namespace,
    outputs: Mapping[str, Path | None],
    more_inputs: Mapping[str, Iterable[Path]] = {},
) -> tuple[PreparedModel, CalibrationFiles | ImageFolder | None]:
    """The model prepared as the qconfig options say, and the ``--calib`` source (not read yet).

    Every output is checked against every input (model, its external data, calibration files,
    the qconfig file and ``more_inputs``) before anything is written.
    """
    from onnxq.accuracy.fallback import INT16_OPSET
    from onnxq.api import adaround_rows, prepare, smooth_quant
    from onnxq.calibration.sources import load_calibration_data
    from onnxq.io import check_outputs_apart, external_data_files
    from onnxq.qconfig import QConfigMapping, resolve_qconfig
    from onnxq.targets import target_mapping

    if args.preprocess is not None and args.calib is None:
        raise OnnxqError("--preprocess applies to image calibration data: give --calib too")
    calib = load_calibration_data(args.calib, preprocess=args.preprocess) if args.calib is not None else None
    inputs = {
        "input model": [args.model],
        "calibration data": list(calib.files) if calib is not None else [],
        "preprocessing file": [Path(args.preprocess)]
        if args.preprocess is not None and Path(args.preprocess).exists()
        else [],
        "qconfig file": [Path(args.qconfig)]
        if args.qconfig is not None and Path(args.qconfig).exists()
        else [],
        **{k: list(v) for k, v in more_inputs.items()},
    }
    check_outputs_apart(outputs, inputs)
    # an existing file is a JSON qconfig whatever its suffix; anything else a preset or a .json path
    mapping: QConfigMapping | None = None
    if args.qconfig is not None:
        qconfig = Path(args.qconfig)
        mapping = (
            QConfigMapping.from_json_file(qconfig) if qconfig.exists() else resolve_qconfig(args.qconfig)
        )
    elif args.activation_dtype or args.per_tensor:
        mapping = target_mapping(args.target)
    if mapping is not None and (args.activation_dtype or args.per_tensor):
        mapping = mapping.with_overrides(
            activation_dtype=args.activation_dtype, per_channel=False if args.per_tensor else None
        )
    model = args.model
    if getattr(args, "smooth_quant", None) is not None:
        if calib is None:
            raise OnnxqError("--smooth-quant needs --calib")
        model = smooth_quant(args.model, calib, args.smooth_quant, progress=not args.no_progress)
    prepared = prepare(
        model,
        mapping,
        target=args.target,
        requantize=args.requantize,
        equalize=args.equalize,
        float_outputs=args.float_outputs,
        bias_correction=getattr(args, "bias_correction", False),
        layer_inputs=adaround_rows(getattr(args, "weight_method", "rtn"), weight_config_from_args(args)),
        min_opset=INT16_OPSET if getattr(args, "fallback", None) == "int16" else None,
    )
    check_outputs_apart(
        outputs, {**inputs, "input model's external data": external_data_files(prepared.model)}
    )
    return prepared, calib


def weight_config_from_args(args: argparse.Namespace) -> object | None:
    """The weight method's settings from ``--adaround-config`` / ``--adaround-iters`` (None: its
    defaults); either without ``--weight-method adaround`` is an error."""
    from dataclasses import replace

    from onnxq.weights.adaround import AdaRoundConfig

    path, iters = getattr(args, "adaround_config", None), getattr(args, "adaround_iters", None)
    if path is None and iters is None:
        return None
    if getattr(args, "weight_method", "rtn") != "adaround":
        raise OnnxqError("--adaround-config and --adaround-iters apply to --weight-method adaround")
    config = AdaRoundConfig() if path is None else AdaRoundConfig.from_json_file(path)
    if iters is not None:
        config = replace(config, **{"sweeps" if config.solver == "descent" else "iterations": iters})
    return config


def calibrate_from_args(
    args: argparse.Namespace, prepared: PreparedModel, calib: CalibrationFiles | ImageFolder | None
) -> CalibrationResult:
    """``prepared.calibrate`` on ``--calib`` with ``--shard``, ``--max-memory``, ``--no-progress``."""
    if calib is None:
        raise OnnxqError(
            "--calib is required: the qconfig quantizes activations, which need calibration data"
        )
    return prepared.calibrate(
        calib,
        progress=not args.no_progress,
        shard=getattr(args, "shard", None),
        max_memory=args.max_memory,
    )


def calibrate_command(args: argparse.Namespace) -> str:
    """``onnxq calibrate``: the observers' statistics as a JSON file for ``quantize --stats``;
    returns the line that says what was written."""
    check_output_dirs(output=args.output)
    prepared, calib = prepare_from_args(args, {"output": args.output})
    if not prepared.plan.observed_values():
        raise OnnxqError("the qconfig quantizes no activations: there is nothing to calibrate")
    if args.dask is not None:
        from onnxq.calibration.dask import calibrate_on_dask

        if args.shard is not None:
            raise OnnxqError("--shard and --dask do not go together: --dask makes the shards itself")
        if calib is None:
            raise OnnxqError("--calib is required")
        result = calibrate_on_dask(args.dask, prepared, calib, shards=args.shards, max_memory=args.max_memory)
    else:
        if args.shards is not None:
            raise OnnxqError("--shards needs --dask (for one shard here, use --shard i/N)")
        result = calibrate_from_args(args, prepared, calib)
    result.save(args.output)
    shard = f" (shard {args.shard})" if args.shard else ""
    return f"wrote {args.output}: {len(result.observers)} tensor(s), {result.num_samples} sample(s){shard}"


def merge_results(results: Iterable[tuple[Path, CalibrationResult]]) -> CalibrationResult:
    """Merge shards' results; they must observe the same tensors (else they are not shards of one
    calibration: the first tensor one file has and another lacks is named)."""
    from onnxq.calibration.result import CalibrationResult

    items = list(results)
    first_path, first = items[0]
    for path, result in items[1:]:
        for a_path, a, b_path, b in ((first_path, first, path, result), (path, result, first_path, first)):
            extra = next((name for name in a.observers if name not in b.observers), None)
            if extra is not None:
                raise OnnxqError(
                    f"{a_path} has tensor {extra!r} and {b_path} does not: the files are not shards of "
                    "one calibration (same model and qconfig)"
                )
    return reduce(CalibrationResult.merge, (r for _, r in items))


def merge_stats_command(args: argparse.Namespace) -> str:
    """``onnxq merge-stats a.json b.json ... -o stats.json``; returns the line that says what was
    written."""
    from onnxq.calibration.result import CalibrationResult
    from onnxq.io import check_outputs_apart

    check_output_dirs(output=args.output)
    check_outputs_apart({"output": args.output}, {"calibration file": args.stats})
    merged = merge_results((path, CalibrationResult.load(path)) for path in args.stats)
    merged.save(args.output)
    return f"wrote {args.output}: {len(args.stats)} file(s), {merged.num_samples} sample(s)"
