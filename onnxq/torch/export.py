"""Export a PyTorch module to ONNX with either torch exporter, with clear errors.

``torch.onnx.export`` has two exporters: the TorchExport-based one (``dynamo=True``, opset >= 18)
and the TorchScript one (``dynamo=False``, opsets 7 to 20). :func:`export` drives both the same
way: the module is exported in inference mode, the batch axis (axis 0 of every input and output) is
dynamic, and the result comes back as an ``onnx.ModelProto`` whose default-domain opset is exactly
the requested one. Failures inside torch are re-raised as :class:`ExportError` with one line that
names the module, the exporter and the opset.

``keep_batchnorm=True`` keeps ``BatchNormalization`` as its own (inference-mode) node instead of
letting the exporter fold it into the preceding convolution, as exporters in training mode and old
models do; onnxq folds it itself.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnx

from onnxq.errors import ExportError
from onnxq.graph import is_onnx_domain

logger = logging.getLogger(__name__)

DYNAMO_MIN_OPSET = 18
DYNAMO_MAX_OPSET = 23
TORCHSCRIPT_MIN_OPSET = 7
TORCHSCRIPT_MAX_OPSET = 20


def export(
    module: Any,
    example_inputs: Any,
    path_or_none: str | os.PathLike[str] | None,
    *,
    dynamo: bool,
    opset: int,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dynamic_batch: bool = True,
    keep_batchnorm: bool = False,
) -> onnx.ModelProto:
    """Export ``module`` to ONNX and return the model (also written to ``path_or_none`` if given).

    Args:
        module: A ``torch.nn.Module``; exported in eval mode (its mode is restored afterwards).
        example_inputs: One tensor or a tuple/list of tensors, the positional inputs of ``forward``.
        path_or_none: Where to write the model (atomically), or None to only return it.
        dynamo: True for the TorchExport-based exporter, False for the TorchScript one.
        opset: Default-domain opset of the result (dynamo: 18-23, TorchScript: 7-20).
        input_names: Graph input names (default ``input`` for one input, ``input_<i>`` otherwise).
        output_names: Graph output names (default ``output`` / ``output_<i>``).
        dynamic_batch: Make axis 0 of every input and output dynamic (named ``batch``).
        keep_batchnorm: Keep BatchNormalization nodes instead of letting the exporter fold them.

    Raises:
        ExportError: torch is not installed, an argument is invalid, or the exporter failed.
    """
    torch = _import_torch()
    if not isinstance(module, torch.nn.Module):
        raise ExportError(f"export: module must be a torch.nn.Module, got {type(module).__name__}")
    name = type(module).__name__
    args = _as_tuple(example_inputs, name, torch)
    _check_opset(opset, dynamo, name)
    in_names = _names(input_names, len(args), "input", name)
    out_names = None if output_names is None else _names(output_names, len(output_names), "output", name)

    was_training = module.training
    module.eval()
    try:
        if out_names is None:
            with torch.no_grad():
                outputs = module(*args)
            count = len(outputs) if isinstance(outputs, (tuple, list)) else 1
            out_names = _names(None, count, "output", name)
        if dynamo:
            proto = _export_dynamo(
                torch, module, args, in_names, out_names, opset, dynamic_batch, keep_batchnorm
            )
        else:
            proto = _export_torchscript(
                torch, module, args, in_names, out_names, opset, dynamic_batch, keep_batchnorm
            )
    except ExportError:
        raise
    except Exception as e:  # torch raises many unrelated types; report them all the same way
        exporter = "dynamo" if dynamo else "TorchScript"
        raise ExportError(
            f"export of {name} failed ({exporter} exporter, opset {opset}): {_first_line(e)}"
        ) from e
    finally:
        module.train(was_training)

    got = _default_opset(proto)
    if got != opset:
        raise ExportError(f"export of {name}: the exporter produced opset {got}, expected {opset}")
    logger.info(
        "exported %s (%s, opset %d): %d nodes",
        name,
        "dynamo" if dynamo else "TorchScript",
        opset,
        len(proto.graph.node),
    )
    if path_or_none is not None:
        from onnxq.io import save_model

        save_model(proto, path_or_none)
    return proto


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise ExportError("onnxq.torch needs PyTorch: pip install 'onnxq[torch]'") from e
    return torch


def _as_tuple(example_inputs: Any, name: str, torch: Any) -> tuple[Any, ...]:
    args = tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    if not args:
        raise ExportError(f"export of {name}: example_inputs is empty; give at least one tensor")
    for i, a in enumerate(args):
        if not isinstance(a, torch.Tensor):
            raise ExportError(
                f"export of {name}: example_inputs[{i}] must be a torch.Tensor, got {type(a).__name__}"
            )
    # Row-major strides: a tensor from numpy can be "contiguous" with odd strides on size-1 axes
    # (N x 1 x H x W with channel stride 1), which dynamo traces as channels-last, and then it
    # lowers adaptive pooling to as_strided + Gather instead of ReduceMean.
    return tuple(torch.empty_like(a, memory_format=torch.contiguous_format).copy_(a) for a in args)


def _check_opset(opset: int, dynamo: bool, name: str) -> None:
    if not isinstance(opset, int) or isinstance(opset, bool):
        raise ExportError(f"export of {name}: opset must be an int, got {opset!r}")
    lo, hi = (
        (DYNAMO_MIN_OPSET, DYNAMO_MAX_OPSET) if dynamo else (TORCHSCRIPT_MIN_OPSET, TORCHSCRIPT_MAX_OPSET)
    )
    if not lo <= opset <= hi:
        exporter = "dynamo" if dynamo else "TorchScript"
        raise ExportError(f"export of {name}: the {exporter} exporter supports opsets {lo}-{hi}, got {opset}")


def _names(given: Sequence[str] | None, count: int, stem: str, name: str) -> list[str]:
    if given is None:
        return [stem] if count == 1 else [f"{stem}_{i}" for i in range(count)]
    names = list(given)
    if len(names) != count or len(set(names)) != count or not all(isinstance(n, str) and n for n in names):
        raise ExportError(f"export of {name}: expected {count} distinct non-empty {stem} names, got {names}")
    return names


def _export_dynamo(
    torch: Any,
    module: Any,
    args: tuple[Any, ...],
    in_names: list[str],
    out_names: list[str],
    opset: int,
    dynamic_batch: bool,
    keep_batchnorm: bool,
) -> onnx.ModelProto:
    dynamic_shapes = None
    if dynamic_batch:
        batch = torch.export.Dim("batch")
        dynamic_shapes = tuple({0: batch} for _ in args)
    program = torch.onnx.export(
        module,
        args,
        None,
        dynamo=True,
        opset_version=opset,
        input_names=in_names,
        output_names=out_names,
        dynamic_shapes=dynamic_shapes,
        optimize=not keep_batchnorm,
        verbose=False,
        report=False,
    )
    return program.model_proto


def _export_torchscript(
    torch: Any,
    module: Any,
    args: tuple[Any, ...],
    in_names: list[str],
    out_names: list[str],
    opset: int,
    dynamic_batch: bool,
    keep_batchnorm: bool,
) -> onnx.ModelProto:
    dynamic_axes = {n: {0: "batch"} for n in [*in_names, *out_names]} if dynamic_batch else None
    extra: dict[str, Any] = {}
    if keep_batchnorm:
        # PRESERVE on an eval-mode module skips the exporter's Conv+BN fusion.
        extra = {"training": torch.onnx.TrainingMode.PRESERVE, "do_constant_folding": False}
    with tempfile.TemporaryDirectory(prefix="onnxq-export-") as tmp:
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=in_names,
            output_names=out_names,
            dynamic_axes=dynamic_axes,
            **extra,
        )
        return onnx.load(str(path), load_external_data=True)


def _default_opset(proto: onnx.ModelProto) -> int | None:
    for entry in proto.opset_import:
        if is_onnx_domain(entry.domain):
            return int(entry.version)
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."
