"""Run the float model over calibration data and feed each observed tensor to its observer.

The observed tensors become extra graph outputs (with their type when the model records it,
otherwise untyped so that onnxruntime infers it) of one onnxruntime session. Graph outputs are
never fused away, so the session runs with full optimisation and every observed tensor holds what
the original graph computes (to float rounding). Batches stream through it: each run's outputs
go to the observers (on a worker thread, while the next run computes) and are dropped, so memory
does not grow with the number of samples; with a dynamic batch dimension the run size is chosen
from the first run so that one run's observed tensors stay near ``RUN_OUTPUT_BYTES``. The model
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
import onnxruntime as ort

from onnxq.calibration.data import (
    MAX_DYNAMIC_BATCH,
    model_input_specs,
    rebatch,
    runs_as_given,
    validate_batches,
)
from onnxq.calibration.observers.base import Observer
from onnxq.calibration.progress import Progress
from onnxq.calibration.result import CalibrationResult
from onnxq.calibration.sources import Batch, count_samples
from onnxq.calibration.subgraphs import expose
from onnxq.errors import CalibrationDataError
from onnxq.runtime import error_text, session_with_outputs

logger = logging.getLogger(__name__)

RUN_OUTPUT_BYTES = 32 << 20  # target size of the observed tensors of one run (dynamic batch)


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
) -> CalibrationResult:
    """Run ``model`` over ``batches`` and update ``observers[name]`` with every value of ``name``.

    ``batches`` are validated against the model inputs and regrouped into runs of the model's
    batch size (:mod:`onnxq.calibration.data`); with a dynamic batch dimension the first run has one sample
    and later ones as many (up to 16) as keep the fetched tensors near ``RUN_OUTPUT_BYTES``.

    Raises :class:`CalibrationDataError` on data that does not fit the model or holds no sample,
    ``ValueError`` for an observed name the graph does not have.
    """
    if isinstance(model, onnx.ModelProto):
        model = ir.from_proto(model)  # shares the tensors' data; the proto is not modified
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
    fetched = list(observed_as)

    if isinstance(batches, Mapping):  # one batch given on its own
        batches = [batches]
    num_samples = 0
    run_size = [1]  # dynamic batch: one sample first, then as many as RUN_OUTPUT_BYTES allows
    as_given = runs_as_given(batches)
    runs = rebatch(
        specs, validate_batches(specs, batches, as_given), max_batch=lambda: run_size[0], as_given=as_given
    )
    # Observers of run k are updated on a worker thread while onnxruntime computes run k + 1
    # (it releases the GIL); at most two runs' tensors are alive at any time.
    with (
        session_with_outputs(
            session_model, fetched, what="model for calibration", spinning=False, memory_arena=False
        ) as sess,
        Progress(count_samples(batches), "calibrating", enabled=progress) as bar,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxq-observe") as worker,
    ):
        job: Future[None] | None = None
        try:
            for feed, n in runs:
                values = _run(sess, fetched, feed, num_samples, n) if fetched else []
                if num_samples == 0 and values:
                    per_sample = max(1, sum(int(v.nbytes) for v in values) // n)
                    run_size[0] = max(1, min(MAX_DYNAMIC_BATCH, RUN_OUTPUT_BYTES // per_sample))
                pairs = [*zip((observed_as[f] for f in fetched), values, strict=True)]
                pairs += [(k, feed[k]) for k in from_feed]
                del values
                if job is not None:
                    job.result()  # re-raises an observer's error
                job = worker.submit(_update_all, observers, pairs)
                num_samples += n
                bar.update(n)
            if job is not None:
                job.result()
        finally:
            if job is not None:
                job.cancel()
    if num_samples == 0:
        raise CalibrationDataError("calibration data is empty: no complete batch for the model")

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


def _run(
    sess: ort.InferenceSession, fetched: list[str], feed: dict[str, np.ndarray], first: int, n: int
) -> list[np.ndarray]:
    try:
        return sess.run(fetched, feed)  # type: ignore[no-any-return]
    except Exception as e:  # onnxruntime raises its own exception types (Fail, InvalidArgument, ...)
        shapes = ", ".join(f"{k!r}: {list(v.shape)}" for k, v in feed.items())
        raise CalibrationDataError(
            f"onnxruntime failed to run the model on calibration {_samples(first, n)} "
            f"(inputs {shapes}): {error_text(e)}"
        ) from None


def _samples(first: int, n: int) -> str:
    return f"sample {first}" if n == 1 else f"samples {first}..{first + n - 1}"


def _update_all(observers: Mapping[str, Observer], pairs: list[tuple[str, np.ndarray]]) -> None:
    for name, value in pairs:
        _update(observers, name, value)


def _update(observers: Mapping[str, Observer], name: str, value: np.ndarray) -> None:
    try:
        observers[name].update(value)
    except ValueError as e:
        raise ValueError(f"observer of tensor {name!r}: {e}") from None
