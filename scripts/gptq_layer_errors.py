#!/usr/bin/env python
"""Per layer of ``bench_weight_only.py``'s decoder: the output error of RTN and of GPTQ on the
calibration inputs, with min-max and with least-error block scales.

For a weight ``W [N, K]`` (rows: outputs), its int4 rounding ``Q`` and the calibration Hessian
``H = 2 X^T X / rows`` (:func:`onnxq.weights.hessian.layer_hessians`, the fp32 model's inputs),
the layer's mean output error is ``||X W^T - X Q^T||^2 / rows = tr((W - Q) H (W - Q)^T) / 2``;
the table gives it relative to ``tr(W H W^T) / 2`` (the output's energy) and GPTQ's over RTN's.
GPTQ minimises exactly this quantity (greedily), so a ratio >= 1 on some layer points to a bug.
The embedding (Gather) has no Hessian: both methods round it to nearest.

Usage::

    python scripts/gptq_layer_errors.py --workdir /tmp/lm --block-size 32
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from bench_weight_only import CONTEXT, corpus, windows


def main(argv: list[str] | None = None) -> int:
    import onnx

    from onnxq.api import structurally_prepared
    from onnxq.graph import constant_array
    from onnxq.planning.weight_only import (
        WeightOnlyAction,
        build_weight_only_plan,
        check_weight_only_op_types,
        weight_only_format,
        weight_only_spec,
    )
    from onnxq.weights.hessian import layer_hessians
    from onnxq.weights.weight_only import dequantize_weight, quantize_weight_only

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="bench_weight_only.py's cache")
    parser.add_argument("--block-size", type=int, default=32)
    parser.add_argument("--calib-windows", type=int, default=128)
    args = parser.parse_args(argv)

    train, _ = corpus(8_000_000)
    calib = [{"tokens": w[None]} for w in windows(train[len(train) // 7 :], args.calib_windows, CONTEXT)]
    spec = weight_only_spec("int4", args.block_size, True)
    model, _, _ = structurally_prepared(onnx.load(str(args.workdir / "lm.onnx")), 21, requantize=False)
    plan = build_weight_only_plan(model.graph, spec, check_weight_only_op_types(None),
                                  weight_only_format("qdq"), set())  # fmt: skip
    hessians = layer_hessians(model, plan, calib, progress=False)
    nodes = {node.name: node for node in model.graph}
    columns = [("rtn", False), ("gptq", False), ("rtn", True), ("gptq", True)]
    print(f"int4 block {args.block_size}, {args.calib_windows} x {CONTEXT} calibration tokens; "
          "output error / output energy (x 1e-4); ratio: GPTQ / RTN")  # fmt: skip
    header = f"{'layer':<18} {'K x N':>11} " + " ".join(
        f"{m + (' mse' if s else ' minmax'):>12}" for m, s in columns
    ) + f" {'ratio minmax':>13} {'ratio mse':>10}"
    print(header)
    print("-" * len(header))
    for d in plan.planned(*WeightOnlyAction):
        h = hessians.get(d.name)
        if h is None:
            print(f"{d.name:<18} (no Hessian: {d.op_type}, rounded to nearest by both)")
            continue
        w = constant_array(nodes[d.name].inputs[d.weight_input])
        assert w is not None and d.granularity is not None
        rows = (w.T if d.granularity.axis == 0 else w).astype(np.float64)
        energy = 0.5 * np.einsum("nk,kl,nl->", rows, h, rows)
        errors = []
        for method, mse in columns:
            q = quantize_weight_only(w, d.spec, d.granularity, method, node=d.name, op_type=d.op_type,
                                     hessian=h, mse_scales=mse)  # fmt: skip
            dq = dequantize_weight(q).astype(np.float64)
            diff = rows - (dq.T if d.granularity.axis == 0 else dq)
            errors.append(0.5 * np.einsum("nk,kl,nl->", diff, h, diff) / energy)
        cells = " ".join(f"{1e4 * e:12.2f}" for e in errors)
        print(f"{d.name:<18} {w.shape[0]:>5} x {w.shape[1]:<5} {cells} "
              f"{errors[1] / errors[0]:13.3f} {errors[3] / errors[2]:10.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
