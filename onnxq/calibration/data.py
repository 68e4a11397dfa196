"""Calibration data: sources (.npz files, directories of them, any iterable of dicts), validation
against the model's inputs, and re-batching to what the model accepts.

A *batch* is a mapping ``{input_name: array}`` whose arrays share a first axis of samples. An
array has either the input's rank (axis 0 is the model's batch axis) or one more (each item along
axis 0 is one complete input, for models without a batch axis). Samples are fed to the model in
runs of its static batch size, or in chunks of up to 16 when the batch dimension is dynamic;
samples that cannot fill a last static-size run are dropped with a warning.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir

from onnxq.errors import CalibrationDataError

logger = logging.getLogger(__name__)

MAX_DYNAMIC_BATCH = 16
Batch = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class InputSpec:
    """One graph input: name, numpy dtype and shape (``None`` for dynamic dims or unknown rank)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...] | None

    def describe(self) -> str:
        dims = "?" if self.shape is None else ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype}[{dims}]"


def model_input_specs(model: onnx.ModelProto | ir.Model) -> tuple[InputSpec, ...]:
    """The inputs a caller must feed (graph inputs that are not also initializers)."""
    if isinstance(model, ir.Model):
        out = []
        for v in model.graph.inputs:
            if v.const_value is not None or v.name in model.graph.initializers:
                continue
            dtype = np.dtype(v.dtype.numpy()) if v.dtype is not None else np.dtype(np.float32)
            shape = None if v.shape is None else tuple(d if isinstance(d, int) else None for d in v.shape)
            out.append(InputSpec(str(v.name), dtype, shape))
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
        shape = None
        if tt.HasField("shape"):
            shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
        specs.append(InputSpec(vi.name, dtype, shape))
    return tuple(specs)


class NpzCalibrationData:
    """Lazily read ``.npz`` files, one file in memory at a time; each file is one batch."""

    def __init__(self, files: Sequence[Path]) -> None:
        self.files = tuple(files)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for path in self.files:
            try:
                z = np.load(path, allow_pickle=False)
                if not isinstance(z, np.lib.npyio.NpzFile):
                    raise CalibrationDataError(f"{path}: expected an .npz archive, got a single array")
                with z:
                    batch = {k: z[k] for k in z.files}
            except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise CalibrationDataError(f"{path}: cannot read calibration data: {msg}") from None
            yield batch

    def batch_label(self, index: int) -> str:
        """How errors name batch ``index``: its file."""
        return str(self.files[index])

    @property
    def num_samples(self) -> int | None:
        """Samples in all files (from the array headers; ``None`` if a header is unreadable)."""
        total = 0
        try:
            for path in self.files:
                with zipfile.ZipFile(path) as zf:
                    name = next((n for n in zf.namelist() if n.endswith(".npy")), None)
                    if name is None:
                        continue
                    with zf.open(name) as f:
                        version = np.lib.format.read_magic(f)
                        if version == (1, 0):
                            shape = np.lib.format.read_array_header_1_0(f)[0]
                        elif version == (2, 0):
                            shape = np.lib.format.read_array_header_2_0(f)[0]
                        else:
                            return None
                    total += int(shape[0]) if shape else 1
        except (OSError, ValueError, zipfile.BadZipFile):
            return None
        return total


def load_calibration_data(path: str | Path) -> NpzCalibrationData:
    """An ``.npz`` file (keys = input names, axis 0 = samples) or a directory of them (sorted)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix == ".npz" and f.is_file())
        if not files:
            raise CalibrationDataError(f"{p}: directory holds no .npz calibration files")
        return NpzCalibrationData(files)
    if not p.exists():
        raise CalibrationDataError(f"{p}: calibration data not found")
    if p.suffix != ".npz":
        raise CalibrationDataError(f"{p}: expected an .npz file or a directory of .npz files")
    return NpzCalibrationData([p])


def count_samples(batches: Iterable[Batch]) -> int | None:
    """Number of samples if knowable without reading data (npz headers, in-memory sequences)."""
    if isinstance(batches, NpzCalibrationData):
        return batches.num_samples
    if isinstance(batches, Sequence):
        try:
            return sum(int(np.shape(next(iter(b.values())))[0]) for b in batches if len(b))
        except (AttributeError, IndexError, TypeError, StopIteration):
            return None
    return None


def _check_batch(specs: Sequence[InputSpec], batch: object, where: str) -> tuple[dict[str, np.ndarray], int]:
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
    out: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for spec in specs:
        arr = np.asarray(batch[spec.name])
        name = f"{where}: input {spec.name!r}"
        if arr.dtype != spec.dtype:
            raise CalibrationDataError(f"{name}: expected dtype {spec.dtype}, got {arr.dtype}")
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
        out[spec.name] = arr
        counts[spec.name] = arr.shape[0]
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{k!r}: {v}" for k, v in counts.items())
        raise CalibrationDataError(f"{where}: inputs disagree on the number of samples ({detail})")
    return out, next(iter(counts.values()), 0)


def validate_batches(specs: Sequence[InputSpec], batches: Iterable[Batch]) -> Iterator[dict[str, np.ndarray]]:
    """Yield each batch after checking names, ranks, static dims and dtypes against ``specs``.

    A single mapping is taken as one batch. Raises :class:`CalibrationDataError` naming the batch
    (its file for .npz sources) and input on a mismatch, and at the end if no sample at all was
    seen (an empty calibration set).
    """
    if isinstance(batches, Mapping):  # one batch given on its own
        batches = [batches]
    total = 0
    label = getattr(batches, "batch_label", None)
    for index, batch in enumerate(batches):
        where = label(index) if label is not None else f"calibration batch {index}"
        checked, n = _check_batch(specs, batch, where)
        total += n
        if n:
            yield checked
    if total == 0:
        raise CalibrationDataError("calibration data is empty: no samples to calibrate on")


def _is_stacked(specs: Sequence[InputSpec], batch: Mapping[str, np.ndarray]) -> bool:
    return any(s.shape is not None and batch[s.name].ndim == len(s.shape) + 1 for s in specs)


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
) -> Iterator[tuple[dict[str, np.ndarray], int]]:
    """Yield ``(feed, num_samples)`` runs the model accepts from validated ``batches``.

    Stacked inputs (one extra leading axis) are fed one item at a time. Otherwise samples are
    regrouped into runs of the static batch size, or of up to ``max_batch`` when it is dynamic
    (a callable is asked again before each run, so a caller can adapt the size to the memory the
    first runs took); at most one run of samples is held back at any time.
    """
    static = _static_batch(specs)

    def run_size() -> int:
        if static is not None:
            return static
        return max(1, int(max_batch() if callable(max_batch) else max_batch))

    pending: list[Mapping[str, np.ndarray]] = []
    n_pending = 0
    for batch in batches:
        if _is_stacked(specs, batch):
            n = next(iter(batch.values())).shape[0]
            for i in range(n):
                yield {k: v[i, ...] for k, v in batch.items()}, 1
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
