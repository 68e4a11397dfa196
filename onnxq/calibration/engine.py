"""Run the float model over calibration data and feed each observed tensor to its observer.

The observed tensors become extra graph outputs (with their type when the model records it,
otherwise untyped so that onnxruntime infers it) of an onnxruntime session, or of one session per
chunk of them under a memory budget (:mod:`onnxq.calibration.chunked`). Graph outputs are
never fused away, so the session runs with full optimisation and every observed tensor holds what
the original graph computes (to float rounding). Batches stream through it: each run's outputs
go to the observers (on a worker thread, while the next run computes) and are dropped, so memory
does not grow with the number of samples; with a dynamic batch dimension the run size is chosen
from the first run so that one run's observed tensors stay near ``RUN_OUTPUT_BYTES`` and within
the budget. ``shard`` keeps every N-th sample (:mod:`onnxq.calibration.shard`). The model
is handed to onnxruntime as a file in a temporary directory with its weights as external data,
which onnxruntime maps rather than copies; models over 2 GB take the same path.

Sessions come from :mod:`onnxq.runtime` (idle threads sleep, no memory arena: see there).
Observed names may also be graph inputs (fed from the data) or initializers (observed once).
Tensors inside ``If``/``Loop``/``Scan`` bodies are carried out to main-graph outputs of a copy of the
model (:mod:`onnxq.calibration.subgraphs`); those of a branch no sample took stay unreached, like
tensors whose every value was NaN/Inf or that were never produced.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import onnx
import onnx_ir as ir

from onnxq.calibration.budget import FreedMemory
from onnxq.calibration.chunked import ChunkedSessions
from onnxq.calibration.data import (
    model_input_specs,
    rebatch,
    runs_as_given,
    validate_batches,
)
from onnxq.calibration.observers.base import Observer
from onnxq.calibration.progress import Progress
from onnxq.calibration.result import CalibrationResult
from onnxq.calibration.shard import Shard, select_shard
from onnxq.calibration.sources import Batch, count_samples
from onnxq.calibration.subgraphs import expose
from onnxq.errors import CalibrationDataError
from onnxq.passes.shapes import infer_shapes

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Names:
    inputs: frozenset[str]
    initializers: frozenset[str]
    produced: frozenset[str]
    nested: frozenset[str]


def _ir_names(model: ir.Model) -> _Names:
    g = model.graph
    nested = {
        str(v.name)
        for sub in g.subgraphs()
        for v in [*sub.initializers.values(), *(o for n in sub for o in n.outputs)]
    }
    return _Names(
        inputs=frozenset(str(v.name) for v in g.inputs),
        initializers=frozenset(g.initializers),
        produced=frozenset(str(o.name) for n in g for o in n.outputs if o.name),
        nested=frozenset(nested),
    )


def _initializer_array(model: ir.Model, name: str) -> np.ndarray:
    value = model.graph.initializers[name]
    assert value.const_value is not None
    return value.const_value.numpy()


def calibrate(
    model: onnx.ModelProto | ir.Model,
    observers: Mapping[str, Observer],
    batches: Iterable[Batch],
    *,
    progress: bool = True,
    shard: Shard | None = None,
    max_memory: int | None = None,
) -> CalibrationResult:
    """Run ``model`` over ``batches`` and update ``observers[name]`` with every value of ``name``.

    ``batches`` are validated against the model inputs and regrouped into runs of the model's
    batch size (:mod:`onnxq.calibration.data`); with a dynamic batch dimension the first run has
    one sample and later ones as many (up to 16) as the memory budget and ``RUN_OUTPUT_BYTES``
    allow. ``shard`` keeps every N-th sample (:mod:`onnxq.calibration.shard`); ``max_memory``
    bounds the process's memory by fetching the observed tensors in chunks
    (:mod:`onnxq.calibration.budget`; None: one chunk of everything).

    Raises :class:`CalibrationDataError` on data that does not fit the model or holds no sample,
    ``ValueError`` for an observed name the graph does not have.
    """
    if isinstance(model, onnx.ModelProto):
        model = ir.from_proto(model)  # shares the tensors' data; the proto is not modified
        infer_shapes(model)  # sizes for the memory budget; this copy is ours to annotate
    names = _ir_names(model)
    specs = model_input_specs(model)
    feed_names = {s.name for s in specs}
    fetched, from_feed, nested = [], [], []
    for name in observers:
        if name in feed_names:
            from_feed.append(name)
        elif name in names.produced:
            fetched.append(name)
        elif name in names.initializers:
            _update(observers, name, _initializer_array(model, name))
        elif name in names.nested:
            nested.append(name)
        else:
            raise ValueError(f"observed tensor {name!r} is not in the model graph")
    # tensors of If/Loop bodies are carried out to main-graph outputs of a copy of the model
    session_model, carriers = expose(model, nested) if nested else (model, {})
    observed_as = {**{n: n for n in fetched}, **{carriers[n]: n for n in nested if n in carriers}}

    if isinstance(batches, Mapping):  # one batch given on its own
        batches = [batches]
    num_samples = 0
    as_given = runs_as_given(batches)
    checked = validate_batches(specs, batches, as_given)
    if shard is not None:
        checked = select_shard(specs, checked, shard, as_given=as_given)
    total = count_samples(batches)
    if total is not None and shard is not None:
        total = len(shard.rows(0, total))
    symbols = {s.name: s.symbols for s in specs}
    # Observers of chunk k are updated on a worker thread while onnxruntime computes chunk k + 1
    # (it releases the GIL); at most two chunks' tensors are alive at any time.
    with (
        ChunkedSessions(session_model, list(observed_as), max_memory, symbols) as sessions,
        Progress(total, "calibrating", enabled=progress) as bar,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxq-observe") as worker,
    ):
        runs = rebatch(specs, checked, max_batch=sessions.run_size, as_given=as_given)
        freed = FreedMemory()
        job: Future[None] | None = None
        try:
            for feed, n in runs:
                chunks = sessions.run(feed, num_samples, n) if observed_as else iter([[]])
                for chunk in chunks:
                    pairs = [(observed_as[name], value) for name, value in chunk]
                    del chunk
                    if job is not None:
                        job.result()  # re-raises an observer's error
                    job = worker.submit(_update_all, observers, pairs)
                    del pairs
                if from_feed:
                    if job is not None:
                        job.result()
                    job = worker.submit(_update_all, observers, [(k, feed[k]) for k in from_feed])
                num_samples += n
                bar.update(n)
                freed.after_run()  # the previous run's tensors are freed by now
            if job is not None:
                job.result()
        finally:
            if job is not None:
                job.cancel()
    if num_samples == 0:
        where = f"shard {shard} of the calibration data" if shard is not None else "calibration data"
        raise CalibrationDataError(f"{where} is empty: no complete batch for the model")

    result = CalibrationResult(observers, num_samples)
    nonfinite, unreached = result.nonfinite, result.unreached
    if nonfinite:
        worst = max(nonfinite, key=lambda k: nonfinite[k])
        logger.warning(
            "calibration: %d NaN/Inf value(s) ignored in %d tensor(s) (most in %r: %d)",
            sum(nonfinite.values()),
            len(nonfinite),
            worst,
            nonfinite[worst],
        )
    if unreached:
        logger.info("calibration: %d tensor(s) never reached: %s", len(unreached), sorted(unreached))
    return result


def _update_all(observers: Mapping[str, Observer], pairs: list[tuple[str, np.ndarray]]) -> None:
    for name, value in pairs:
        _update(observers, name, value)


def _update(observers: Mapping[str, Observer], name: str, value: np.ndarray) -> None:
    try:
        observers[name].update(value)
    except ValueError as e:
        raise ValueError(f"observer of tensor {name!r}: {e}") from None
