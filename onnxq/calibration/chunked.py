"""Observed tensors fetched in chunks, one onnxruntime session per chunk, under a memory budget.

:mod:`onnxq.calibration.budget` says how the chunks are sized. :class:`ChunkedSessions` plans them
from the first run's inputs, makes one session per chunk (each computing the model with its
chunk's tensors as extra outputs), and yields a run's observed tensors chunk by chunk. After the
first run it checks the plan against the sizes the run actually returned (a tensor whose shape
could not be inferred was only estimated) and re-plans once if a chunk came out over its
allowance; it also says how many samples later runs may hold when the batch is dynamic.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import onnx_ir as ir
import onnxruntime as ort

from onnxq.calibration.budget import (
    ChunkPlan,
    chunk_allowance,
    dim_sizes,
    fixed_bytes,
    plan_chunks,
    resident_bytes,
    value_bytes,
)
from onnxq.calibration.data import MAX_DYNAMIC_BATCH
from onnxq.errors import CalibrationDataError
from onnxq.runtime import error_text, session_with_outputs

logger = logging.getLogger(__name__)

#: Target size of one chunk's tensors in a run, when the budget allows more (dynamic batch):
#: beyond this, larger runs buy no speed.
RUN_OUTPUT_BYTES = 32 << 20


def _model_bytes(model: ir.Model) -> int:
    return sum(v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None)


class ChunkedSessions:
    """Sessions fetching ``names`` (graph values of ``model``) in chunks within ``max_memory``."""

    def __init__(
        self,
        model: ir.Model,
        names: Sequence[str],
        max_memory: int | None,
        input_symbols: Mapping[str, Sequence[str | None]],
    ) -> None:
        self._model = model
        self._names = list(names)
        self._max_memory = max_memory
        self._symbols = dict(input_symbols)
        by_name = {str(o.name): o for n in model.graph for o in n.outputs}
        self._values = [by_name.get(n) for n in self._names]
        self._stack = contextlib.ExitStack()
        self._sessions: list[tuple[tuple[str, ...], ort.InferenceSession]] = []
        self.plan: ChunkPlan | None = None
        self._checked = False
        self._per_sample = 0  # bytes of the largest chunk for one sample, after the first run

    def __enter__(self) -> ChunkedSessions:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _estimates(self, feed: Mapping[str, np.ndarray]) -> list[tuple[str, int]]:
        sizes = dim_sizes(self._symbols, feed)
        known = [None if v is None else value_bytes(v, sizes) for v in self._values]
        fallback = max((k for k in known if k is not None), default=0)
        unknown = sum(k is None for k in known)
        if unknown:
            logger.info(
                "calibration: %d observed tensor(s) have no inferred size; counted as %d bytes each",
                unknown,
                fallback,
            )
        return [(n, fallback if k is None else k) for n, k in zip(self._names, known, strict=True)]

    def _open(self, plan: ChunkPlan) -> None:
        self._stack.close()
        self._stack = contextlib.ExitStack()
        self.plan = plan
        self._sessions = [
            (
                chunk,
                self._stack.enter_context(
                    session_with_outputs(
                        self._model,
                        list(chunk),
                        what="model for calibration",
                        spinning=False,
                        memory_arena=False,
                    )
                ),
            )
            for chunk in plan.chunks
        ]
        if len(plan.chunks) > 1:
            logger.info(
                "calibration: %d observed tensors fetched in %d chunks of at most %.0f MiB each "
                "(one model run per chunk)",
                len(self._names),
                len(plan.chunks),
                plan.allowance / 2**20,
            )
        for name in plan.over_budget:
            logger.warning(
                "calibration: tensor %r alone is larger than the memory budget allows a chunk", name
            )

    def _planned(self, sizes: Sequence[tuple[str, int]], feed_bytes: int) -> ChunkPlan:
        total = sum(n for _, n in sizes)
        if self._max_memory is None:
            return plan_chunks(sizes, max(total, 1))
        largest = max((n for _, n in sizes), default=0)
        rss, model_bytes = resident_bytes(), _model_bytes(self._model)
        one = chunk_allowance(self._max_memory, fixed_bytes(rss, model_bytes, 1, feed_bytes, largest))
        if total <= one:
            return plan_chunks(sizes, one)
        # several sessions: each one's copy of the weights counts; size the chunks for that many
        plan = plan_chunks(sizes, one)
        for _ in range(4):
            fixed = fixed_bytes(rss, model_bytes, len(plan.chunks), feed_bytes, largest)
            again = plan_chunks(sizes, chunk_allowance(self._max_memory, fixed))
            if len(again.chunks) == len(plan.chunks):
                return again
            plan = again
        return plan

    def run(
        self, session_feed: Mapping[str, np.ndarray], first: int, n: int
    ) -> Iterator[list[tuple[str, np.ndarray]]]:
        """Yield ``(name, value)`` pairs of every observed tensor of one run, a chunk at a time."""
        if self.plan is None:
            feed_bytes = sum(int(np.asarray(v).nbytes) for v in session_feed.values())
            self._open(self._planned(self._estimates(session_feed), feed_bytes))
        measured: list[tuple[str, int]] = []
        for chunk, sess in list(self._sessions):
            values = _run(sess, list(chunk), session_feed, first, n)
            if not self._checked:
                measured += [(name, int(v.nbytes)) for name, v in zip(chunk, values, strict=True)]
            yield list(zip(chunk, values, strict=True))
            del values
        if not self._checked:
            self._checked = True
            self._after_first_run(measured, n)

    def _after_first_run(self, measured: list[tuple[str, int]], n: int) -> None:
        assert self.plan is not None

        def chunk_bytes(plan: ChunkPlan) -> int:
            size = dict(measured)
            return max((sum(size[name] for name in chunk) for chunk in plan.chunks), default=0)

        if self._max_memory is not None and chunk_bytes(self.plan) > self.plan.allowance:
            # an estimate was wrong: plan again from what the run returned
            self._open(self._planned(measured, 0))
        self._per_sample = max(1, chunk_bytes(self.plan) // max(n, 1))

    def run_size(self) -> int:
        """Samples a later run may hold when the batch dimension is dynamic."""
        if not self._checked:
            return 1
        cap = RUN_OUTPUT_BYTES if self.plan is None else min(RUN_OUTPUT_BYTES, self.plan.allowance)
        return max(1, min(MAX_DYNAMIC_BATCH, cap // self._per_sample))


def _run(
    sess: ort.InferenceSession, fetched: list[str], feed: Mapping[str, np.ndarray], first: int, n: int
) -> list[np.ndarray]:
    try:
        return sess.run(fetched, dict(feed))  # type: ignore[no-any-return]
    except Exception as e:  # onnxruntime raises its own exception types (Fail, InvalidArgument, ...)
        shapes = ", ".join(f"{k!r}: {list(np.shape(v))}" for k, v in feed.items())
        raise CalibrationDataError(
            f"onnxruntime failed to run the model on calibration {_samples(first, n)} "
            f"(inputs {shapes}): {error_text(e)}"
        ) from None


def _samples(first: int, n: int) -> str:
    return f"sample {first}" if n == 1 else f"samples {first}..{first + n - 1}"


__all__ = ["RUN_OUTPUT_BYTES", "ChunkedSessions"]
