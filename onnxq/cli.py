"""The ``onnxq`` command line: argument parsing, then one call per subcommand.

::

    onnxq quantize model.onnx -o model.int8.onnx --calib calib.npz --qconfig x86 [--report r.json]
    onnxq calibrate model.onnx --calib calib.npz -o stats.json [--shard i/N | --dask ADDRESS]
    onnxq merge-stats shard0.json shard1.json ... -o stats.json
    onnxq quantize model.onnx -o model.int8.onnx --stats stats.json
    onnxq quantize model.onnx -o model.int8.onnx --mode dynamic [--format onnxruntime] [--op-types MatMul]
    onnxq quantize model.onnx -o model.int4.onnx --mode weight-only --weight-dtype int4 --block-size 32
    onnxq quantize model.onnx -o model.int8.onnx --calib images/ --preprocess imagenet
    onnxq inspect model.int8.onnx [--scales] [--nodes] [--json]
    onnxq compare model.onnx model.int8.onnx --calib calib.npz [--html r.html] [--json r.json] [--limit N]
    onnxq demo

Any :class:`~onnxq.errors.OnnxqError` (bad model, bad data, bad config) and any OS error on the
files named on the command line ends the program with one line ``onnxq: error: <message>`` on
stderr and exit status 2; nothing is written on failure (models and reports are written atomically
and only once everything succeeded), and no output path may be an input (the model, its external
data, calibration files, the qconfig file). Ctrl-C (exit 130) and SIGTERM (exit 143, what
``timeout`` and ``kill`` send) remove every temporary file before the program ends. Warnings go
to stderr as ``onnxq: warning: <message>``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from onnxq import __version__
from onnxq.calibration.preprocess import PREPROCESS_PRESETS
from onnxq.errors import OnnxqError
from onnxq.qconfig import PRESETS, STATIC_PRESETS
from onnxq.targets import DEFAULT_TARGET, TARGETS

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # 128 + SIGTERM
_PROG = "onnxq"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is the same single line as any other error."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see '{self.prog} --help')")


class _UsageError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=_PROG, description="Quantize ONNX models to int8 QDQ ONNX.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what each step does")
    # -v also after the subcommand; SUPPRESS keeps the subparser from resetting a leading -v
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{quantize,calibrate,merge-stats,lower,inspect,compare,demo}"
    )

    # how the model is quantized: quantize and calibrate must plan the same observers
    qopts = argparse.ArgumentParser(add_help=False)
    qopts.add_argument(
        "--qconfig",
        default=None,
        help=f"preset ({', '.join(PRESETS)}) or a JSON qconfig file (default: what suits --target)",
    )
    qopts.add_argument(
        "--target",
        default=DEFAULT_TARGET,
        choices=TARGETS,
        help="where the model will run, when no --qconfig is given (default: portable: full 8-bit "
        "activations, per-channel weights; x86-avx2: 7-bit activations against vpmaddubsw saturation)",
    )
    qopts.add_argument(
        "--activation-dtype",
        choices=("uint8", "int8", "uint16", "int16"),
        help="activations unsigned asymmetric or signed symmetric (default: as the qconfig says); "
        "16-bit types upgrade the model to opset 21",
    )
    qopts.add_argument(
        "--per-tensor", action="store_true", help="one weight scale per tensor, not per channel"
    )
    qopts.add_argument(
        "--equalize",
        action="store_true",
        help="cross-layer equalisation of Conv -> (ReLU) -> Conv pairs before quantizing (helps "
        "per-tensor weights of MobileNet-style models; the float model computes the same)",
    )
    qopts.add_argument(
        "--float-outputs",
        action="store_true",
        help="keep float the model outputs that quantized nodes make and no node reads (the last "
        "layer's input and weights stay int8; its output skips the final rounding)",
    )
    qopts.add_argument(
        "--requantize",
        action="store_true",
        help="the model is quantized already: quantize only what is still float (the report says what)",
    )
    # how calibration runs
    copts = argparse.ArgumentParser(add_help=False)
    copts.add_argument(
        "--calib",
        type=Path,
        default=None,
        help=".npz or .npy file, a directory of .npz/.npy files (see docs/calibration-data.md), or "
        "a directory of JPEG/PNG images; needed unless the qconfig is weight-only",
    )
    copts.add_argument(
        "--preprocess",
        default=None,
        help=f"for an image --calib: a preset ({', '.join(PREPROCESS_PRESETS)}) or a JSON "
        "ImagePreprocess file (default: what the model's input shape tells)",
    )
    copts.add_argument(
        "--max-memory",
        metavar="SIZE",
        default=None,
        help="bound calibration's memory, e.g. 2GB or 512MiB (default: half the machine's memory, "
        "at most 8 GiB); observed tensors are then fetched in chunks, one model run per chunk",
    )
    copts.add_argument("--no-progress", action="store_true", help="no progress bar during calibration")

    from onnxq.cli_quantize import add_quantize_parser  # imports only argparse at module level

    add_quantize_parser(sub, [common, qopts, copts])

    c = sub.add_parser(
        "calibrate",
        parents=[common, qopts, copts],
        help="run calibration only and save the observers' statistics (for quantize --stats)",
    )
    c.add_argument("model", type=Path, help="fp32 .onnx model")
    c.add_argument("-o", "--output", type=Path, required=True, help="where to write the statistics (JSON)")
    c.add_argument(
        "--shard",
        metavar="i/N",
        default=None,
        help="calibrate on every N-th sample only, starting at sample i (merge the N files with merge-stats)",
    )
    c.add_argument(
        "--dask",
        metavar="ADDRESS",
        default=None,
        help="fan the shards out to a Dask cluster (its scheduler's address, e.g. tcp://host:8786); "
        "needs onnxq[dask], and --calib readable by the workers at the same path",
    )
    c.add_argument(
        "--shards",
        type=int,
        default=None,
        help="with --dask: how many shards (tasks) to cut the data into (default: one per worker thread)",
    )

    m = sub.add_parser(
        "merge-stats", parents=[common], help="merge calibration files of shards of one data set"
    )
    m.add_argument("stats", type=Path, nargs="+", help="calibration files from 'onnxq calibrate --shard'")
    m.add_argument("-o", "--output", type=Path, required=True, help="where to write the merged statistics")

    lower_cmd = sub.add_parser(
        "lower",
        parents=[common],
        help="rewrite a QDQ model (onnxq's or any tool's) to run on onnxq's kernels",
    )
    lower_cmd.add_argument("model", type=Path, help="QDQ .onnx model")
    lower_cmd.add_argument(
        "-o", "--output", type=Path, required=True, help="where to write the lowered model"
    )

    i = sub.add_parser(
        "inspect", parents=[common], help="summarise a model: ops, quantized nodes, weight bytes, Q/DQ"
    )
    i.add_argument("model", type=Path, help=".onnx model")
    i.add_argument("--scales", action="store_true", help="list each quantized tensor's scale and zero point")
    i.add_argument("--nodes", action="store_true", help="list every quantized node, not only the float ones")
    i.add_argument("--json", action="store_true", help="print the summary as JSON")

    cmp = sub.add_parser(
        "compare", parents=[common], help="per-layer error of a quantized model against its fp32 model"
    )
    cmp.add_argument("model", type=Path, help="fp32 .onnx model")
    cmp.add_argument("quantized", type=Path, help="its QDQ .onnx model (onnxq's or another tool's)")
    cmp.add_argument("--calib", type=Path, required=True, help="data to compare on, as quantize's --calib")
    cmp.add_argument("--preprocess", help="for an image --calib: as quantize's --preprocess")
    cmp.add_argument("--html", type=Path, help="write the self-contained HTML report here")
    cmp.add_argument("--json", type=Path, help="write the JSON report here (schemas/compare.schema.json)")
    cmp.add_argument("--limit", type=int, help="compare on at most N samples")

    d = sub.add_parser(
        "demo", help="quantize the bundled digits CNN; print fp32 vs int8 accuracy, size, speed"
    )
    d.add_argument("--runs", type=int, default=30, help="timed runs per model (median reported; default 30)")
    d.add_argument("-o", "--output", type=Path, help="also save the int8 demo model here")
    d.add_argument(
        "--qconfig",
        default="qnnpack",
        choices=STATIC_PRESETS,
        help="preset to quantize with (default: qnnpack)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (also the console script's entry point)."""
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as e:
        return _fail(str(e))
    with _cli_logging(args.verbose), _terminate_as_exception():
        return _run_command(args)


class _Terminated(BaseException):
    """SIGTERM, raised where the program is, so that ``finally`` blocks and context managers
    remove temporary files and directories as they do for Ctrl-C."""


@contextlib.contextmanager
def _terminate_as_exception() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise _Terminated

    if threading.current_thread() is not threading.main_thread():  # handlers need the main thread
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_command(args: argparse.Namespace) -> int:
    try:
        if args.command == "quantize":
            from onnxq.cli_quantize import quantize_command

            return quantize_command(args)
        elif args.command == "calibrate":
            from onnxq.cli_stats import calibrate_command

            print(calibrate_command(args))
        elif args.command == "merge-stats":
            from onnxq.cli_stats import merge_stats_command

            print(merge_stats_command(args))
        elif args.command == "lower":
            from onnxq.cli_quantize import lower_command

            lower_command(args)
        elif args.command == "inspect":
            _inspect(args)
        elif args.command == "compare":
            from onnxq.cli_compare import compare_command

            print(compare_command(args))
        else:
            _demo(args)
    except OnnxqError as e:
        return _fail(str(e))
    except BrokenPipeError:  # stdout closed early (`onnxq inspect m.onnx | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at interpreter exit
        return EXIT_OK
    except OSError as e:  # a file named on the command line cannot be read or written
        where = f"'{e.filename}': " if e.filename else ""
        return _fail(f"{where}{e.strerror or e}")
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Terminated:
        print(f"{_PROG}: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    return EXIT_OK


def _inspect(args: argparse.Namespace) -> None:
    from onnxq.inspect import format_summary, inspect_model

    summary = inspect_model(args.model)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print(format_summary(summary, scales=args.scales, nodes=args.nodes))


def _demo(args: argparse.Namespace) -> None:
    from onnxq.demo import format_demo, run_demo

    if args.runs < 1:
        raise OnnxqError(f"--runs must be at least 1, got {args.runs}")
    from onnxq.cli_stats import check_output_dirs

    check_output_dirs(output=args.output)
    print(format_demo(run_demo(runs=args.runs, output=args.output, qconfig=args.qconfig)))


def _fail(message: str) -> int:
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"{_PROG}: error: {first}", file=sys.stderr)
    return EXIT_ERROR


class _Formatter(logging.Formatter):
    """One line per record, never a traceback (what a library attaches with ``exc_info``)."""

    def format(self, record: logging.LogRecord) -> str:
        lines = record.getMessage().strip().splitlines() or [""]
        return f"{_PROG}: {record.levelname.lower()}: {lines[0]}"


@contextlib.contextmanager
def _cli_logging(verbose: bool) -> Iterator[None]:
    """Route the ``onnxq`` loggers to stderr as ``onnxq: <level>: <message>`` for one command, then
    restore them (``main`` may be called in-process, e.g. by tests). The libraries underneath
    (onnx-ir) log through the same handler, one line each, warnings and above only."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    levels = {"onnxq": logging.INFO if verbose else logging.WARNING, "onnx_ir": logging.WARNING}
    loggers = [logging.getLogger(name) for name in levels]
    saved = [(lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.handlers[:] = [handler]
        lg.setLevel(levels[lg.name])
        lg.propagate = False
    try:
        yield
    finally:
        for lg, (handlers, level, propagate) in zip(loggers, saved, strict=True):
            lg.handlers[:] = handlers
            lg.setLevel(level)  # setLevel, not assignment: it clears the loggers' level cache
            lg.propagate = propagate


__all__ = ["build_parser", "main"]
