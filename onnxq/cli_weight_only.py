"""What ``onnxq quantize --mode weight-only`` reads from its options: the model, checked against the
outputs, converted by :func:`onnxq.api_weight_only.convert_weight_only`.

``--weight-dtype`` is int8, int4 (the default) or uint4, ``--block-size`` the 4-bit block (default
32), ``--format`` qdq or onnxruntime, ``--op-types`` the op types to quantize. Calibration options
do not apply (the mode is data-free): ``--calib`` or ``--stats`` get one warning and are not read;
options of the other modes are refused in one line.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from onnxq.errors import OnnxqError

if TYPE_CHECKING:
    from onnxq.api_weight_only import WeightOnlyConversion

logger = logging.getLogger(__name__)


def convert_weight_only_from_args(
    args: argparse.Namespace, outputs: Mapping[str, Path | None]
) -> WeightOnlyConversion:
    """The weight-only conversion ``quantize --mode weight-only`` asks for (nothing written yet)."""
    from onnxq.api_weight_only import convert_weight_only
    from onnxq.io import check_outputs_apart, external_data_files, load_model
    from onnxq.planning.weight_only import check_weight_only_op_types, weight_only_format, weight_only_spec

    for option, given in (("--calib", args.calib), ("--stats", args.stats)):
        if given is not None:
            logger.warning("--mode weight-only needs no calibration data: %s %s is ignored", option, given)
    for option, given in (("--activation-dtype", args.activation_dtype), ("--requantize", args.requantize),
                          ("--preprocess", args.preprocess), ("--qconfig", args.qconfig),
                          ("--per-tensor", args.per_tensor)):  # fmt: skip
        if given:
            raise OnnxqError(f"{option} does not apply to --mode weight-only")
    dtype = args.weight_dtype or "int4"
    block_size = 32 if args.block_size is None else args.block_size
    op_types = None if args.op_types is None else [t.strip() for t in args.op_types.split(",") if t.strip()]
    # bad options are refused before the model is read
    weight_only_spec(dtype, block_size, True)
    weight_only_format(args.format)
    check_weight_only_op_types(op_types)
    inputs = {"input model": [args.model]}
    check_outputs_apart(outputs, inputs)
    model = load_model(args.model)
    check_outputs_apart(outputs, {**inputs, "input model's external data": external_data_files(model)})
    return convert_weight_only(model, dtype, block_size, op_types=op_types, format=args.format)


__all__ = ["convert_weight_only_from_args"]
