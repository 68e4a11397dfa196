"""What ``onnxq quantize --mode weight-only`` reads from its options: the model, checked against the
outputs, converted by :func:`onnxq.api_weight_only.convert_weight_only`.

``--weight-dtype`` is int8, int4 (the default) or uint4, ``--block-size`` the 4-bit block (default
32), ``--format`` qdq, onnxruntime or onnxq, ``--op-types`` the op types to quantize, ``--method`` rtn
(the default, data-free: ``--calib`` or ``--stats`` get one warning and are not read) or gptq
(reads ``--calib``, with ``--preprocess`` for images and ``--no-progress``; ``--stats`` cannot
serve: it holds no Hessians; ``--sequential``: Hessians layer stage by layer stage on the model
quantized so far), ``--scale-search`` mse (the default: least-error block scales) or minmax.
Options of the other modes are refused in one line.
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
    from onnxq.weights.registry import weight_method_needs_data

    method = args.method or "rtn"
    needs_data = weight_method_needs_data(method)
    if needs_data and (args.calib is None or args.stats is not None):
        raise OnnxqError(f"--method {method} needs --calib (the layers' inputs; --stats does not hold them)")
    for option, given in (("--calib", None if needs_data else args.calib), ("--stats", args.stats)):
        if given is not None:
            logger.warning("--method %s needs no calibration data: %s %s is ignored", method, option, given)
    preprocess = None if needs_data else args.preprocess  # images for gptq's --calib
    for option, given in (("--activation-dtype", args.activation_dtype), ("--requantize", args.requantize),
                          ("--preprocess", preprocess), ("--qconfig", args.qconfig),
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
    calib = None
    if needs_data:
        from onnxq.calibration.sources import load_calibration_data

        calib = load_calibration_data(args.calib, preprocess=args.preprocess)
    inputs = {"input model": [args.model], "calibration data": list(calib.files) if calib is not None else []}
    check_outputs_apart(outputs, inputs)
    model = load_model(args.model)
    check_outputs_apart(outputs, {**inputs, "input model's external data": external_data_files(model)})
    search = args.scale_search or "mse"
    return convert_weight_only(model, dtype, block_size, op_types=op_types, format=args.format, method=method,
                               data=calib, progress=not args.no_progress, scale_search=search,
                               sequential=args.sequential)  # fmt: skip


__all__ = ["convert_weight_only_from_args"]
