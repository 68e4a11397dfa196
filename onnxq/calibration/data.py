"""Calibration data: validation against the model's inputs, and runs of what the model accepts.

A *batch* is a mapping ``{input_name: array}``. Two conventions say how it becomes runs:

* **As given** (any Python iterable of dicts): a dict whose arrays have their inputs' ranks and
  declared dims is one run of the model, fed as it is: a 0-d sample rate is a 0-d array, a
  recurrent state ``[2, batch, 128]`` is passed whole. A dict that does not fit as given is read
  as samples on axis 0, below.
* **Samples on axis 0** (files and image folders, :mod:`onnxq.calibration.sources`): every array holds its
  samples on axis 0, either as the input's own leading (batch) axis (the array has the input's
  rank) or as one extra leading axis (rank + 1: each item is one complete input). The extra axis is
  how a file says an input has no sample axis of its own: ``sr`` of shape ``(samples,)`` for a 0-d
  input, ``state`` of shape ``(samples, 2, 1, 128)``. With such an input every run is one sample;
  otherwise samples are regrouped into runs of the model's static batch size, or of up to 16 when
  the batch dimension is dynamic; samples that cannot fill a last static-size run are dropped with
  a warning.

A dimension that is not a positive integer (symbolic, unknown, or ``-1`` as PaddlePaddle writes a
dynamic batch) is dynamic. A run of no samples is an error, never a loop without progress.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnx_ir as ir

from onnxq.calibration.adapters import adapt
from onnxq.errors import CalibrationDataError

logger = logging.getLogger(__name__)

MAX_DYNAMIC_BATCH = 16


@dataclass(frozen=True)
class InputSpec:
    """One graph input: name, numpy dtype and shape (``None`` for dynamic dims or unknown rank)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...] | None
    #: The symbolic name of each dynamic dim (None where it has none): inputs sharing a name must
    #: agree on its size.
    symbols: tuple[str | None, ...] = field(default=(), compare=False)

    def describe(self) -> str:
        dims = "?" if self.shape is None else ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype}[{dims}]"


def _static_dim(d: object) -> int | None:
    """A declared dimension, or None when it is dynamic: symbolic, unknown, or not a positive
    integer (PaddlePaddle writes a dynamic batch as ``-1``)."""
    return d if isinstance(d, int) and d > 0 else None


def _symbol(d: object) -> str | None:
    value = getattr(d, "value", None)  # onnx_ir.SymbolicDim
    return value if isinstance(value, str) and value else None


def model_input_specs(model: onnx.ModelProto | ir.Model) -> tuple[InputSpec, ...]:
    """The inputs a caller must feed (graph inputs that are not also initializers)."""
    if isinstance(model, ir.Model):
        out = []
        for v in model.graph.inputs:
            if v.const_value is not None or v.name in model.graph.initializers:
                continue
            dtype = np.dtype(v.dtype.numpy()) if v.dtype is not None else np.dtype(np.float32)
            shape = None if v.shape is None else tuple(_static_dim(d) for d in v.shape)
            symbols = () if v.shape is None else tuple(_symbol(d) for d in v.shape)
            out.append(InputSpec(str(v.name), dtype, shape, symbols))
        return tuple(out)
    inits = {t.name for t in model.graph.initializer}
    specs = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        dtype = (
            np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type))
            if tt.elem_type
            else np.dtype(np.float32)
        )
        shape, symbols = None, ()
        if tt.HasField("shape"):
            symbols = tuple(d.dim_param or None for d in tt.shape.dim)
            shape = tuple(_static_dim(d.dim_value) if d.HasField("dim_value") else None for d in tt.shape.dim)
        specs.append(InputSpec(vi.name, dtype, shape, symbols))
    return tuple(specs)


def matches_as_given(specs: Sequence[InputSpec], batch: Mapping[str, np.ndarray]) -> bool:
    """Every array has its input's rank and static dims: the dict is one run of the model as it is."""
    for spec in specs:
        arr = np.asarray(batch[spec.name])
        if spec.shape is None:
            continue
        if arr.ndim != len(spec.shape):
            return False
        if any(want is not None and want != got for want, got in zip(spec.shape, arr.shape, strict=True)):
            return False
    return True


def _symbol_conflict(specs: Sequence[InputSpec], batch: Mapping[str, np.ndarray]) -> str | None:
    """Why inputs sharing a symbolic dim disagree on its size (None when they agree)."""
    seen: dict[str, tuple[str, int, int]] = {}
    for spec in specs:
        for axis, (symbol, got) in enumerate(zip(spec.symbols, np.shape(batch[spec.name]), strict=False)):
            if symbol is None:
                continue
            name, size, first_axis = seen.setdefault(symbol, (spec.name, got, axis))
            if size != got:
                what = "the number of samples" if axis == first_axis == 0 else f"dimension {symbol!r}"
                return f"inputs disagree on {what} ({name!r}: {size}, {spec.name!r}: {got})"
    return None


def _run_samples(specs: Sequence[InputSpec], batch: Mapping[str, np.ndarray]) -> int:
    """How many samples a run as given holds: the size of axis 0 when every input that has one
    agrees on it (a batch), else 1 (a recurrent state's axis 0 is not a batch)."""
    sizes = {int(np.shape(batch[s.name])[0]) for s in specs if np.ndim(batch[s.name]) > 0}
    return sizes.pop() if len(sizes) == 1 else 1


def _stacked(specs: Sequence[InputSpec], batch: Mapping[str, np.ndarray]) -> frozenset[str]:
    """The inputs whose axis 0 is an extra samples axis (each item one complete input)."""
    return frozenset(s.name for s in specs if s.shape is not None and batch[s.name].ndim == len(s.shape) + 1)


def _check_batch(
    specs: Sequence[InputSpec], batch: object, where: str, as_given: bool
) -> tuple[dict[str, np.ndarray], int]:
    if not isinstance(batch, Mapping):
        raise CalibrationDataError(
            f"{where}: expected a mapping of input name to array, got {type(batch).__name__}"
        )
    expected = {s.name for s in specs}
    missing = sorted(expected - set(batch))
    unexpected = sorted(set(batch) - expected)
    if missing:
        raise CalibrationDataError(f"{where}: missing model input(s) {', '.join(map(repr, missing))}")
    if unexpected:
        known = ", ".join(repr(s.name) for s in specs)
        raise CalibrationDataError(
            f"{where}: unexpected input(s) {', '.join(map(repr, unexpected))} (model inputs: {known})"
        )
    out = {spec.name: np.asarray(batch[spec.name]) for spec in specs}
    for spec in specs:
        if out[spec.name].dtype != spec.dtype:
            raise CalibrationDataError(
                f"{where}: input {spec.name!r}: expected dtype {spec.dtype}, got {out[spec.name].dtype}"
            )
    if as_given and matches_as_given(specs, out):
        conflict = _symbol_conflict(specs, out)
        if conflict is not None:
            raise CalibrationDataError(f"{where}: {conflict}")
        return out, _run_samples(specs, out)
    counts: dict[str, int] = {}
    for spec in specs:
        arr = out[spec.name]
        name = f"{where}: input {spec.name!r}"
        if spec.shape is not None:
            rank = len(spec.shape)
            if arr.ndim == rank + 1:
                per_sample, static = arr.shape[1:], spec.shape
            elif arr.ndim == rank and rank > 0:
                per_sample, static = arr.shape[1:], spec.shape[1:]
            elif rank == 0:
                raise CalibrationDataError(
                    f"{name}: expected shape (samples,) for the scalar input, got shape {arr.shape}"
                )
            else:
                raise CalibrationDataError(
                    f"{name}: expected rank {rank} (or {rank + 1} with a leading samples axis) "
                    f"for {spec.describe()}, got shape {arr.shape}"
                )
            for axis, (want, got) in enumerate(zip(static, per_sample, strict=True)):
                if want is not None and want != got:
                    raise CalibrationDataError(
                        f"{name}: expected {spec.describe()}, got shape {arr.shape} "
                        f"(dimension {axis + arr.ndim - len(static)} is {got}, expected {want})"
                    )
        elif arr.ndim == 0:
            raise CalibrationDataError(f"{name}: expected a leading samples axis, got a scalar")
        counts[spec.name] = arr.shape[0]
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{k!r}: {v}" for k, v in counts.items())
        raise CalibrationDataError(f"{where}: inputs disagree on the number of samples ({detail})")
    return out, next(iter(counts.values()), 0)


def runs_as_given(batches: Iterable[object]) -> bool:
    """Whether ``batches``' dicts are runs of the model as given (any iterable) or hold samples on
    axis 0 (sources that say ``samples_on_axis0 = True``: files, image folders)."""
    return not getattr(batches, "samples_on_axis0", False)


def validate_batches(
    specs: Sequence[InputSpec], batches: Iterable[object], as_given: bool | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """Yield each batch after checking names, ranks, static dims and dtypes against ``specs``.

    Batches enter through :func:`onnxq.calibration.adapters.adapt` (tensors, tuples, bare arrays,
    sources bound to the model); a single mapping or array is one batch. A file source's headers
    are all checked before the first batch is yielded, so a bad file stops calibration before any
    run. ``as_given`` (default: :func:`runs_as_given` of the source) accepts a dict whose arrays fit
    the inputs exactly as one run. Raises :class:`CalibrationDataError` naming the batch (its file
    for file sources) and input on a mismatch, and at the end if no sample at all was seen (an
    empty calibration set).
    """
    source = adapt(specs, batches)
    as_given = runs_as_given(source) if as_given is None else as_given
    for where, stand_in in source.stand_ins():
        _check_batch(specs, stand_in, where, as_given)
    total = 0
    for index, batch in enumerate(source):
        checked, n = _check_batch(specs, batch, source.batch_label(index), as_given)
        total += n
        if n:
            yield checked
    if total == 0:
        raise CalibrationDataError("calibration data is empty: no samples to calibrate on")


def _static_batch(specs: Sequence[InputSpec]) -> int | None:
    static = {s.shape[0] for s in specs if s.shape and s.shape[0] is not None}
    if len(static) > 1:
        raise CalibrationDataError(f"model inputs have different static batch sizes {sorted(static)}")
    return static.pop() if static else None


def _merge(parts: list[Mapping[str, np.ndarray]]) -> Mapping[str, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def rebatch(
    specs: Sequence[InputSpec],
    batches: Iterable[Mapping[str, np.ndarray]],
    max_batch: int | Callable[[], int] = MAX_DYNAMIC_BATCH,
    *,
    as_given: bool = False,
) -> Iterator[tuple[dict[str, np.ndarray], int]]:
    """Yield ``(feed, num_samples)`` runs the model accepts from validated ``batches``.

    With ``as_given``, a batch that fits the inputs exactly is one run as it is. Otherwise axis 0
    holds samples: an input with one extra leading axis gives one complete input per item (an
    input without a sample axis of its own: a scalar, a recurrent state), and then every run is one
    sample; else samples are regrouped into runs of the static batch size, or of up to
    ``max_batch`` when it is dynamic (a callable is asked again before each run, so a caller can
    adapt the size to the memory the first runs took); at most one run of samples is held back.
    """
    static: int | None = None
    static_known = False

    def run_size() -> int:
        nonlocal static, static_known
        if not static_known:
            static, static_known = _static_batch(specs), True
        size = static if static is not None else int(max_batch() if callable(max_batch) else max_batch)
        if size < 1:  # a run of no samples would never drain the pending ones
            raise CalibrationDataError(f"cannot feed the model runs of {size} samples")
        return size

    pending: list[Mapping[str, np.ndarray]] = []
    n_pending = 0
    for batch in batches:
        if as_given and matches_as_given(specs, batch):
            yield dict(batch), _run_samples(specs, batch)
            continue
        stacked = _stacked(specs, batch)
        if stacked:
            n = next(iter(batch.values())).shape[0]
            for i in range(n):
                yield {k: v[i, ...] if k in stacked else v[i : i + 1] for k, v in batch.items()}, 1
            continue
        pending.append(batch)
        n_pending += next(iter(batch.values())).shape[0]
        while n_pending >= (size := run_size()):
            merged = _merge(pending)
            yield {k: v[:size] for k, v in merged.items()}, size
            n_pending -= size
            pending = [{k: v[size:] for k, v in merged.items()}] if n_pending else []
    if not n_pending:
        return
    if static is not None:
        logger.warning(
            "%d calibration sample(s) dropped: the model's batch size is fixed at %d", n_pending, static
        )
    else:
        yield dict(_merge(pending)), n_pending


__all__ = [
    "MAX_DYNAMIC_BATCH",
    "InputSpec",
    "matches_as_given",
    "model_input_specs",
    "rebatch",
    "runs_as_given",
    "validate_batches",
]
