"""What a calibration source yields, as ``{input name: numpy array}`` batches for the model.

:func:`adapt` is where batches enter calibration (:func:`onnxq.calibration.data.validate_batches`
calls it). A source that needs the model first (an image folder completing its preprocessing) is
bound to the model's inputs through its ``for_inputs(specs)``. Then each item becomes a mapping:

* a **mapping** (a dict, a Hugging Face batch) keeps its keys, which must be the input names;
* a **tuple or list** of arrays maps to the model's inputs in their declared order. One longer
  than the number of inputs, ``(x, y)`` from a labelled ``DataLoader``, has its trailing items
  ignored (logged once, at info level); a shorter one is an error naming the missing inputs. When
  its first item is itself a mapping, tuple or list, ``((x1, x2), y)`` or ``({...}, y)``, that first
  item holds the inputs and the rest is ignored;
* a **bare array or tensor** is the model's only input (an error for a model with several).

PyTorch tensors become numpy arrays with ``.detach().cpu().numpy()``, recognised by their
module, so torch is never imported here; anything else goes through ``numpy.asarray``. A single
mapping, array or tensor given as the whole source is one batch. Errors are one
:class:`~onnxq.errors.CalibrationDataError` line naming the batch (its file for file sources).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxq.errors import CalibrationDataError, first_line

if TYPE_CHECKING:
    from onnxq.calibration.data import InputSpec

logger = logging.getLogger(__name__)


def adapt(specs: Sequence[InputSpec], source: Any) -> Adapted:
    """``source`` bound to the model's inputs ``specs``, yielding ``{input name: array}``."""
    if isinstance(source, Mapping) or is_array(source):
        source = [source]
    bind = getattr(source, "for_inputs", None)
    return Adapted(bind(specs) if callable(bind) else source, specs)


class Adapted:
    """A source whose items are converted to mappings; keeps what the source says of itself
    (``samples_on_axis0``, how it names a batch, the stand-ins of its files)."""

    def __init__(self, source: Iterable[Any], specs: Sequence[InputSpec]) -> None:
        self.source = source
        self.specs = tuple(specs)
        self.samples_on_axis0 = bool(getattr(source, "samples_on_axis0", False))
        self._ignored_logged = False

    def batch_label(self, index: int) -> str:
        label = getattr(self.source, "batch_label", None)
        return label(index) if callable(label) else f"calibration batch {index}"

    def stand_ins(self) -> Iterator[tuple[str, Mapping[str, np.ndarray]]]:
        """The source's batches as zero-stride arrays of their declared shapes and dtypes, where
        it can tell them without reading data (files); nothing otherwise."""
        stand_ins = getattr(self.source, "stand_ins", None)
        if callable(stand_ins):
            for where, item in stand_ins():
                yield where, self.to_mapping(item, where)

    def __iter__(self) -> Iterator[Mapping[str, np.ndarray]]:
        for index, item in enumerate(self.source):
            yield self.to_mapping(item, self.batch_label(index))

    def to_mapping(self, item: Any, where: str) -> Mapping[str, np.ndarray]:
        """One item as ``{input name: array}`` by the rules of the module docstring."""
        if isinstance(item, Mapping):
            return {k: to_numpy(v, f"{where}: input {k!r}") for k, v in item.items()}
        names = [s.name for s in self.specs]
        if is_array(item):
            if len(names) != 1:
                raise CalibrationDataError(
                    f"{where}: a single array feeds a model with one input; this one has "
                    f"{len(names)} ({', '.join(map(repr, names))}): give a tuple or a mapping "
                    "(on disk: .npz files, or a directory per input)"
                )
            return {names[0]: to_numpy(item, f"{where}: input {names[0]!r}")}
        if not isinstance(item, (tuple, list)):
            raise CalibrationDataError(
                f"{where}: expected a mapping of input name to array, a tuple of arrays or an array, "
                f"got {type(item).__name__}"
            )
        if item and isinstance(item[0], (Mapping, tuple, list)):
            self._log_ignored(len(item) - 1)
            return self.to_mapping(item[0], where)
        if len(item) < len(names):
            missing = ", ".join(map(repr, names[len(item) :]))
            raise CalibrationDataError(
                f"{where}: {len(item)} array(s) for the model's {len(names)} inputs (missing {missing})"
            )
        self._log_ignored(len(item) - len(names))
        return {
            n: to_numpy(v, f"{where}: input {n!r}") for n, v in zip(names, item[: len(names)], strict=True)
        }

    def _log_ignored(self, count: int) -> None:
        if count > 0 and not self._ignored_logged:
            self._ignored_logged = True
            logger.info(
                "calibration: batches hold %d item(s) after the model's inputs (labels?); they are not used",
                count,
            )


def is_array(value: object) -> bool:
    """A numpy array or scalar, a torch tensor, or anything with ``__array__``."""
    return isinstance(value, (np.ndarray, np.generic)) or _is_torch(value) or hasattr(value, "__array__")


def to_numpy(value: object, where: str) -> np.ndarray:
    """``value`` as a numpy array (a torch tensor detached and copied to the CPU)."""
    if isinstance(value, np.ndarray):
        return value
    try:
        if _is_torch(value):
            return value.detach().cpu().numpy()  # type: ignore[attr-defined,no-any-return]
        return np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as e:
        what = f"a torch tensor of {value.dtype}" if _is_torch(value) else type(value).__name__  # type: ignore[attr-defined]
        raise CalibrationDataError(
            f"{where}: cannot convert {what} to a numpy array ({first_line(e)})"
        ) from None


def _is_torch(value: object) -> bool:
    return type(value).__module__.partition(".")[0] == "torch" and hasattr(value, "detach")


__all__ = ["Adapted", "adapt", "is_array", "to_numpy"]
