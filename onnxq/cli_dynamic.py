"""What ``onnxq quantize --mode dynamic`` reads from its options: the model and qconfig, checked
against the outputs, converted by :func:`onnxq.api_dynamic.convert_dynamic`.

Calibration options do not apply (activations are quantized at run time): ``--calib`` or
``--stats`` get one warning and are not read. ``--weight-dtype uint8`` (``--format qdq-uint8``:
the qdq format so) stores the int8 weights as uint8 (exact on onnxruntime on x86 CPUs without
VNNI); ``--per-tensor`` gives each weight one scale; ``--op-types`` names the op types to quantize
(an unknown one is an error listing those known); ``--reduce-range`` / ``--no-reduce-range`` set
7-bit weights for the integer matmuls (default: on without ``--qconfig``).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from onnxq.errors import OnnxqError

if TYPE_CHECKING:
    from onnxq.api_dynamic import DynamicConversion

logger = logging.getLogger(__name__)


def convert_dynamic_from_args(
    args: argparse.Namespace, outputs: Mapping[str, Path | None]
) -> DynamicConversion:
    """The dynamic conversion ``quantize --mode dynamic`` asks for (nothing written yet)."""
    from onnxq.api_dynamic import convert_dynamic, dynamic_format
    from onnxq.io import check_outputs_apart, external_data_files, load_model
    from onnxq.qconfig import QConfigMapping, resolve_qconfig

    for option, given in (("--calib", args.calib), ("--stats", args.stats)):
        if given is not None:
            logger.warning(
                "--mode dynamic quantizes activations at run time: %s %s is ignored", option, given
            )
    for option, given in (("--activation-dtype", args.activation_dtype), ("--requantize", args.requantize),
                          ("--preprocess", args.preprocess)):  # fmt: skip
        if given:
            raise OnnxqError(f"{option} does not apply to --mode dynamic")
    fmt = "qdq" if args.format == "qdq-uint8" else args.format
    dynamic_format(fmt)  # an unknown format is refused before the model is read
    op_types = None if args.op_types is None else [t.strip() for t in args.op_types.split(",") if t.strip()]
    qconfig = None if args.qconfig is None else Path(args.qconfig)
    inputs = {"input model": [args.model], "qconfig file": [qconfig] if qconfig and qconfig.exists() else []}
    check_outputs_apart(outputs, inputs)
    model = load_model(args.model)
    check_outputs_apart(outputs, {**inputs, "input model's external data": external_data_files(model)})
    mapping = None
    if qconfig is not None:
        mapping = (
            QConfigMapping.from_json_file(qconfig) if qconfig.exists() else resolve_qconfig(args.qconfig)
        )
        if args.per_tensor:
            mapping = mapping.with_overrides(per_channel=False)
    return convert_dynamic(
        model, op_types, weight_dtype="uint8" if args.format == "qdq-uint8" else args.weight_dtype or "int8",
        per_channel=not args.per_tensor, format=fmt, qconfig_mapping=mapping, reduce_range=args.reduce_range,
    )  # fmt: skip


__all__ = ["convert_dynamic_from_args"]
