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
from typing import Any

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
from onnxq.observers.base import Observer, observer_from_state
from onnxq.progress import Progress

logger = logging.getLogger(__name__)

RUN_OUTPUT_BYTES = 32 << 20  # target size of the observed tensors of one run (dynamic batch)


@dataclass(frozen=True)
class CalibrationResult:
    """Observers after calibration, keyed by tensor name, and what calibration could not see."""

    observers: Mapping[str, Observer]
    unreached: frozenset[str] = frozenset()
    nonfinite: dict[str, int] = field(default_factory=dict)
    num_samples: int = 0

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (a calibration table): every observer's state by tensor name."""
        return {
            "version": 1,
            "num_samples": self.num_samples,
            "unreached": sorted(self.unreached),
            "nonfinite": dict(self.nonfinite),
            "observers": {name: obs.state_dict() for name, obs in self.observers.items()},
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> CalibrationResult:
        """Inverse of :meth:`state_dict`."""
        if state.get("version") != 1:
            raise ValueError(f"calibration state version {state.get('version')!r} is not supported")
        return cls(
            observers={name: observer_from_state(s) for name, s in state["observers"].items()},
            unreached=frozenset(state["unreached"]),
            nonfinite={str(k): int(v) for k, v in state["nonfinite"].items()},
            num_samples=int(state["num_samples"]),
        )


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


def _session_options() -> ort.SessionOptions:
    opts = ort.SessionOptions()
    # Observed tensors are graph outputs, which no optimisation may remove or fuse away, so full
    # optimisation is safe (outputs agree with ORT_DISABLE_ALL to float rounding) and much faster.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_cpu_mem_arena = False  # the arena keeps the peak of the largest run for good
    # Idle intra-op threads would spin against the observer thread for the same cores.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


def _new_session(path: str) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(path, _session_options(), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnsupportedModelError(f"onnxruntime cannot run the model for calibration: {first}") from None


@contextlib.contextmanager
def _session(model: ir.Model, outputs: list[str]) -> Iterator[ort.InferenceSession]:
    """A session computing ``outputs``; the model's own outputs are restored before it runs.

    The model is written to a temporary directory with its weights as external data: onnxruntime
    maps them instead of copying a serialised model (and > 2 GB models work the same way).
    """
    graph = model.graph
    by_name = {str(o.name): o for n in graph for o in n.outputs}
    orig_outputs = list(graph.outputs)
    extra = [by_name[n] for n in outputs if all(by_name[n] is not o for o in orig_outputs)]
    with tempfile.TemporaryDirectory(prefix="onnxq-calib-") as tmp:
        path = Path(tmp) / "model.onnx"
        graph.outputs.extend(extra)
        try:
            ir.save(model, path, external_data="model.onnx.data")
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
    if isinstance(model, onnx.ModelProto):
        model = ir.from_proto(model)  # shares the tensors' data; the proto is not modified
    names = _ir_names(model)
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

    if isinstance(batches, Mapping):  # one batch given on its own
        batches = [batches]
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


def _update_all(observers: Mapping[str, Observer], pairs: list[tuple[str, np.ndarray]]) -> None:
    for name, value in pairs:
        _update(observers, name, value)


def _update(observers: Mapping[str, Observer], name: str, value: np.ndarray) -> None:
    try:
        observers[name].update(value)
    except ValueError as e:
        raise ValueError(f"observer of tensor {name!r}: {e}") from None
