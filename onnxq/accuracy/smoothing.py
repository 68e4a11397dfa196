"""SmoothQuant's order of work: channel maxima first, then the rewrite, then the usual calibration.

Smoothing changes the ranges of the tensors it touches (a LayerNorm's output becomes ``X / s``),
so statistics observed before the rewrite cannot serve the quantization after it. Two orders are
correct: observe per-channel minima and maxima and derive the smoothed per-tensor range
analytically (exact for min/max observers only, not for histogram or percentile ones), or run the
data twice. onnxq runs it twice, so every observer sees the tensors it quantizes:

1. one calibration run of the structurally prepared float model with a
   :class:`~onnxq.accuracy.input_means.ChannelAbsMax` on each smoothable LayerNorm output only
   (``O(channels)`` memory; through the calibration engine's public API, as bias correction's
   means);
2. :class:`~onnxq.passes.smooth_quant.SmoothQuant` folds the scales into the float model, which
   computes the same function;
3. the smoothed model is prepared, planned and calibrated as any model (in ``quantize_static``).

The data is therefore read twice: ``batches`` must be re-iterable (a list, a data source), not a
one-shot iterator.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import onnx_ir as ir

from onnxq.accuracy.input_means import ChannelAbsMax
from onnxq.errors import CalibrationDataError
from onnxq.passes import run_passes
from onnxq.passes.smooth_quant import DEFAULT_ALPHA, SmoothQuant, check_alpha, smoothing_candidates

logger = logging.getLogger(__name__)


def smooth_prepared(
    model: ir.Model,
    batches: Iterable[Any],
    alpha: float = DEFAULT_ALPHA,
    *,
    progress: bool = False,
    max_memory: int | None = None,
) -> tuple[ir.Model, tuple[str, ...]]:
    """The structurally prepared float ``model`` smoothed in place (returned, with the pass's
    notes), from the channel maxima of one calibration run over ``batches``."""
    from onnxq.calibration.engine import calibrate  # lazy: the engine loads onnxruntime

    alpha = check_alpha(alpha)
    if iter(batches) is batches:
        raise CalibrationDataError(
            "SmoothQuant reads the calibration data twice (channel maxima, then calibration): give "
            "a list or a data source, not a one-shot iterator"
        )
    candidates, notes = smoothing_candidates(model.graph)
    if not candidates:
        logger.warning("smooth-quant: no LayerNorm feeding constant-weight matmuls; nothing smoothed")
        return model, (*notes, "smooth-quant: nothing to smooth")
    maxima = {c.output: ChannelAbsMax(-1) for c in candidates}
    calibrate(model, maxima, batches, progress=progress, max_memory=max_memory)
    act_max = {name: m.max for name, m in maxima.items() if m.max is not None}
    model, results = run_passes(model, [SmoothQuant(act_max, alpha)])
    return model, tuple(n for r in results for n in r.notes)


__all__ = ["smooth_prepared"]
