"""Calibration fanned out to a Dask cluster: one task per shard, the states merged here.

``onnxq calibrate model.onnx --calib DATA -o stats.json --dask tcp://scheduler:8786`` (and
:func:`calibrate_on_dask`) cuts the data set into ``N`` shards (:mod:`onnxq.calibration.shard`:
sample ``k`` goes to shard ``k mod N``), sends each worker the prepared model once (scattered, as
ONNX bytes) and one task per shard: the worker builds fresh observers for the planned tensors,
streams *its own* reading of the data source (the files must be readable by every worker at the
same path: a shared file system or an object-store mount) through the model, and returns the
observers' state — a few kilobytes, never activations. The states are merged here in shard order,
so the result is the same as one run over all the data wherever the observers merge exactly
(min/max and histograms), whichever worker ran which shard and in which order.

A worker lost mid-task loses only that task: the scheduler runs it again elsewhere (up to its
``allowed-failures`` setting), and only a completed task's state is ever merged, so nothing is
counted twice. Errors in the data are not retried: the first one ends the run in one line, and
nothing is written. Dask is an optional dependency (``pip install "onnxq[dask]"``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from onnxq.calibration.result import CalibrationResult
from onnxq.calibration.shard import Shard
from onnxq.errors import ConfigError, OnnxqError

if TYPE_CHECKING:
    from onnxq.api import PreparedModel

logger = logging.getLogger(__name__)

#: How long to wait for the scheduler before giving up.
CONNECT_TIMEOUT_S = 20
#: Largest prepared model sent to the workers (one protobuf message).
MAX_MODEL_BYTES = (2 << 30) - (64 << 20)


def calibrate_shard(
    model_bytes: bytes,
    specs: Mapping[str, tuple[str, dict[str, Any]]],
    batches: Iterable[Mapping[str, Any]],
    shard: tuple[int, int],
    max_memory: int | str | None,
) -> dict[str, Any]:
    """One task, run on a worker: calibrate fresh observers on one shard; their state as JSON-able
    values (:meth:`CalibrationResult.state_dict`)."""
    import onnx
    import onnx_ir as ir

    from onnxq.calibration.budget import default_max_memory, parse_memory
    from onnxq.calibration.engine import calibrate
    from onnxq.calibration.observers import make_observer

    model = ir.from_proto(onnx.load_model_from_string(model_bytes))
    observers = {name: make_observer(kind, None, **args) for name, (kind, args) in specs.items()}
    if max_memory is None:
        max_memory = default_max_memory()
    elif isinstance(max_memory, str):
        max_memory = parse_memory(max_memory)
    result = calibrate(model, observers, batches, progress=False, shard=Shard(*shard), max_memory=max_memory)
    return result.state_dict()


def _client(address: str) -> Any:
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError('calibration on Dask needs Dask distributed: pip install "onnxq[dask]"') from None
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as e:
        raise OnnxqError(f"cannot reach the Dask scheduler at {address!r}: {e}") from None


def calibrate_on_dask(
    address: str | Any,
    prepared: PreparedModel,
    batches: Iterable[Mapping[str, Any]],
    *,
    shards: int | None = None,
    max_memory: int | str | None = None,
    progress: bool = True,
) -> CalibrationResult:
    """Calibrate ``prepared`` on ``batches`` as ``shards`` tasks of a Dask cluster (its scheduler's
    ``address``, or a ``distributed.Client``); default: one shard per worker thread.

    ``batches`` is pickled to every worker, which iterates it itself: give a source that reads
    files (``CalibrationFiles``, an ``ImageFolder``) rather than arrays held in memory here.
    """
    from tqdm.auto import tqdm

    from onnxq.io import to_proto

    specs = {
        name: (spec.observer, dict(spec.observer_args))
        for name, spec in prepared.plan.observed_values().items()
    }
    if not specs:
        raise ConfigError("the qconfig quantizes no activations: there is nothing to calibrate")
    proto = to_proto(prepared.model)
    if proto.ByteSize() > MAX_MODEL_BYTES:
        raise ConfigError(
            "the prepared model is over 2 GB: calibrate it with --shard i/N on each machine and "
            "merge the files with 'onnxq merge-stats'"
        )
    model_bytes = proto.SerializeToString()
    del proto
    owned = isinstance(address, str)
    client = _client(address) if owned else address
    try:
        count = shards if shards is not None else max(1, sum(client.nthreads().values()))
        if count < 1:
            raise ConfigError(f"--shards must be at least 1, got {count}")
        Shard(0, count)  # bounds
        # keys unique to this call (not the data's hash, not an id() Python may reuse): a scheduler
        # that still releases an earlier run's identical model must not hand its key to this run
        run = uuid.uuid4().hex
        # the model as a task's result, not scattered data: the scheduler keeps the task, so a
        # worker lost with the only copy is recomputed instead of cancelling every shard
        model_ref = client.submit(_model_bytes, model_bytes, key=f"onnxq-model-{run}", pure=False)
        futures = [
            client.submit(
                calibrate_shard,
                model_ref,
                specs,
                batches,
                (i, count),
                max_memory,
                key=f"onnxq-calibrate-{run}-shard-{i}-of-{count}",
                pure=False,
            )
            for i in range(count)
        ]
        states: dict[int, dict[str, Any]] = {}
        index = {f.key: i for i, f in enumerate(futures)}
        from distributed import as_completed

        with (
            client.as_current(),
            tqdm(total=count, desc="calibrating shards", unit="shard", disable=not progress) as bar,
        ):
            for future in as_completed(futures):
                states[index[future.key]] = _outcome(future, index[future.key], count)
                bar.update(1)
    finally:
        if owned:
            client.close()
    results = [CalibrationResult.from_state_dict(states[i]) for i in range(count)]
    merged = results[0]
    for r in results[1:]:
        merged = merged.merge(r)
    logger.info("calibration on Dask: %d shard(s), %d sample(s)", count, merged.num_samples)
    return merged


def _model_bytes(data: bytes) -> bytes:
    """The serialised model, as a task's result (see :func:`calibrate_on_dask`)."""
    return data


def _outcome(future: Any, i: int, count: int) -> dict[str, Any]:
    try:
        return future.result()  # type: ignore[no-any-return]
    except OnnxqError as e:
        raise type(e)(f"shard {i}/{count}: {e}") from None
    except Exception as e:  # a worker that died too often (KilledWorker), a cancelled task...
        raise OnnxqError(f"shard {i}/{count} failed on the Dask cluster: {type(e).__name__}: {e}") from None


__all__ = ["calibrate_on_dask", "calibrate_shard"]
