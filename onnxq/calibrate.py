"""Run the float model over calibration data and feed each observed tensor to its observer.

The observed tensors become extra graph outputs (with their type when the model records it,
otherwise untyped so that onnxruntime infers it) of one onnxruntime session with graph
optimisations off, so every intermediate tensor exists as in the original graph. Batches stream
through it: each run's outputs go to the observers and are dropped, so memory does not grow with
the number of samples. Models whose serialised size nears the 2 GB protobuf limit are written to a
temporary directory with external data and the session is created from that path.

Observed names may also be graph inputs (fed from the data) or initializers (observed once).
Tensors that only exist inside subgraphs (If/Loop bodies) cannot be fetched and are reported as
unreached, like tensors whose every value was NaN/Inf or that were never produced.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort

from onnxq.data import (
    MAX_DYNAMIC_BATCH,
    Batch,
    count_samples,
    model_input_specs,
    rebatch,
    validate_batches,
)
from onnxq.errors import CalibrationDataError, UnsupportedModelError
from onnxq.observers.base import Observer
from onnxq.progress import Progress

logger = logging.getLogger(__name__)

LARGE_MODEL_BYTES = 1_800_000_000  # serialise through external data above this size
RUN_OUTPUT_BYTES = 96 << 20  # target size of the observed tensors of one run (dynamic batch)


@dataclass(frozen=True)
class CalibrationResult:
    """Observers after calibration, keyed by tensor name, and what calibration could not see."""

    observers: Mapping[str, Observer]
    unreached: frozenset[str] = frozenset()
    nonfinite: dict[str, int] = field(default_factory=dict)
    num_samples: int = 0


@dataclass(frozen=True)
class _Names:
    inputs: frozenset[str]
    initializers: frozenset[str]
    produced: frozenset[str]
    nested: frozenset[str]


def _proto_names(model: onnx.ModelProto) -> _Names:
    g = model.graph
    nested: set[str] = set()

    def walk(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            for attr in node.attribute:
                for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                    nested.update(o for n in sub.node for o in n.output)
                    nested.update(t.name for t in sub.initializer)
                    walk(sub)

    walk(g)
    return _Names(
        inputs=frozenset(i.name for i in g.input),
        initializers=frozenset(t.name for t in g.initializer),
        produced=frozenset(o for n in g.node for o in n.output if o),
        nested=frozenset(nested),
    )


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


def _initializer_array(model: onnx.ModelProto | ir.Model, name: str) -> np.ndarray:
    if isinstance(model, ir.Model):
        value = model.graph.initializers[name]
        assert value.const_value is not None
        return value.const_value.numpy()
    tensor = next(t for t in model.graph.initializer if t.name == name)
    return onnx.numpy_helper.to_array(tensor)


def _session_options() -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    return opts


def _new_session(source: str | bytes) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(source, _session_options(), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnsupportedModelError(f"onnxruntime cannot run the model for calibration: {first}") from None


@contextlib.contextmanager
def _session(model: onnx.ModelProto | ir.Model, outputs: list[str]) -> Iterator[ort.InferenceSession]:
    """A session computing ``outputs``; the caller's model is left as it was."""
    if isinstance(model, onnx.ModelProto) and model.ByteSize() < LARGE_MODEL_BYTES:
        known = {vi.name: vi for vi in [*model.graph.value_info, *model.graph.output]}
        n_orig = len(model.graph.output)
        existing = {o.name for o in model.graph.output}
        for name in outputs:
            if name not in existing:
                vi = model.graph.output.add()
                if name in known:
                    vi.CopyFrom(known[name])
                else:
                    vi.name = name
        try:
            data = model.SerializeToString()
        finally:
            del model.graph.output[n_orig:]
        yield _new_session(data)
        return
    irm = ir.from_proto(model) if isinstance(model, onnx.ModelProto) else model
    graph = irm.graph
    by_name = {str(o.name): o for n in graph for o in n.outputs}
    orig_outputs = list(graph.outputs)
    extra = [by_name[n] for n in outputs if by_name[n] not in orig_outputs]
    with tempfile.TemporaryDirectory(prefix="onnxq-calib-") as tmp:
        path = Path(tmp) / "model.onnx"
        graph.outputs.extend(extra)
        try:
            ir.save(irm, path, external_data="model.onnx.data")
        finally:
            graph.outputs.clear()
            graph.outputs.extend(orig_outputs)
        yield _new_session(str(path))


def calibrate(
    model: onnx.ModelProto | ir.Model,
    observers: Mapping[str, Observer],
    batches: Iterable[Batch],
    *,
    progress: bool = True,
) -> CalibrationResult:
    """Run ``model`` over ``batches`` and update ``observers[name]`` with every value of ``name``.

    ``batches`` are validated against the model inputs and regrouped into runs of the model's
    batch size (:mod:`onnxq.data`); with a dynamic batch dimension the first run has one sample
    and later ones as many (up to 16) as keep the fetched tensors near ``RUN_OUTPUT_BYTES``.

    Raises :class:`CalibrationDataError` on data that does not fit the model or holds no sample,
    ``ValueError`` for an observed name the graph does not have.
    """
    if isinstance(model, ir.Model) and _small_ir(model):
        model = ir.to_proto(model)
    names = _proto_names(model) if isinstance(model, onnx.ModelProto) else _ir_names(model)
    specs = model_input_specs(model)
    feed_names = {s.name for s in specs}
    fetched, from_feed, unreached = [], [], set()
    for name in observers:
        if name in feed_names:
            from_feed.append(name)
        elif name in names.produced:
            fetched.append(name)
        elif name in names.initializers:
            _update(observers, name, _initializer_array(model, name))
        elif name in names.nested:
            unreached.add(name)
        else:
            raise ValueError(f"observed tensor {name!r} is not in the model graph")

    num_samples = 0
    run_size = [1]  # dynamic batch: one sample first, then as many as RUN_OUTPUT_BYTES allows
    runs = rebatch(specs, validate_batches(specs, batches), max_batch=lambda: run_size[0])
    # Observers of run k are updated on a worker thread while onnxruntime computes run k + 1
    # (it releases the GIL); at most two runs' tensors are alive at any time.
    with (
        _session(model, fetched) as sess,
        Progress(count_samples(batches), "calibrating", enabled=progress) as bar,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxq-observe") as worker,
    ):
        job: Future[None] | None = None
        try:
            for feed, n in runs:
                values = sess.run(fetched, feed) if fetched else []
                if num_samples == 0 and values:
                    per_sample = max(1, sum(int(v.nbytes) for v in values) // n)
                    run_size[0] = max(1, min(MAX_DYNAMIC_BATCH, RUN_OUTPUT_BYTES // per_sample))
                pairs = [*zip(fetched, values, strict=True), *((k, feed[k]) for k in from_feed)]
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

    unreached |= {name for name, obs in observers.items() if not obs.reached}
    nonfinite = {name: obs.nonfinite_count for name, obs in observers.items() if obs.nonfinite_count}
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
    return CalibrationResult(dict(observers), frozenset(unreached), nonfinite, num_samples)


def _small_ir(model: ir.Model) -> bool:
    total = 0
    for v in model.graph.initializers.values():
        if v.const_value is not None:
            total += v.const_value.nbytes
    return total < LARGE_MODEL_BYTES


def _update_all(observers: Mapping[str, Observer], pairs: list[tuple[str, np.ndarray]]) -> None:
    for name, value in pairs:
        _update(observers, name, value)


def _update(observers: Mapping[str, Observer], name: str, value: np.ndarray) -> None:
    try:
        observers[name].update(value)
    except ValueError as e:
        raise ValueError(f"observer of tensor {name!r}: {e}") from None
