"""A memory budget for calibration: how many observed tensors one onnxruntime run may return.

Every observed tensor of a run is alive at once in the run's outputs, and the observers of run
``k`` work on a worker thread while run ``k + 1`` computes, so without a bound the peak is about
twice the size of every observed tensor of one run: for a transformer at a long sequence length
that is many gigabytes, whatever the number of samples. Under a budget ``M`` (``--max-memory``):

* the *fixed* part is what the process holds before any tensor is observed: its resident memory
  once the model is loaded (``rss``), the model's weights again for each onnxruntime session
  (``model_bytes``: onnxruntime maps or copies them), one run's inputs, and onnxruntime's own
  working memory, taken as twice the largest observed tensor (the tensors a node reads and
  writes while the graph runs);
* what is left, ``A = M - fixed``, holds :data:`IN_FLIGHT` copies of a chunk's tensors (the
  run computing, the run being observed, and the observers' temporaries), so a chunk may hold
  ``A / IN_FLIGHT`` bytes;
* the observed tensors are packed, in graph order, into chunks of at most that size; each chunk
  gets its own session, and every run of the model is made once per chunk (more compute, bounded
  memory). With a dynamic batch dimension the run size is chosen first: as many samples (up to
  16) as keep one chunk of everything within the allowance, so small models still run in one
  chunk at full speed.

Sizes come from the tensors' inferred shapes, with symbolic dimensions resolved from the inputs
of the first run (a dimension named like an input's, ``batch`` or ``sequence``, takes its size); a
tensor whose size cannot be known that way is counted as the largest one that can. The budget is
planned on the first run's shapes: runs with larger inputs (longer sequences, bigger images) take
proportionally more.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from onnxq.errors import ConfigError

#: Copies of one chunk's tensors alive at once: two runs' outputs and the observers' temporaries.
IN_FLIGHT = 3
#: Smallest budget accepted (a typo such as ``--max-memory 2`` is refused, not run for hours).
MIN_MEMORY = 64 << 20
#: The default budget is this share of the machine's physical memory, at most MAX_DEFAULT.
DEFAULT_SHARE = 0.5
MAX_DEFAULT = 8 << 30

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1 << 10,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1 << 20,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1 << 30,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1 << 40,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def parse_memory(text: str) -> int:
    """Bytes from ``"2GB"``, ``"1.5 GiB"``, ``"512MB"`` or a plain number of bytes (KB/MB/GB are
    powers of 1000, KiB/MiB/GiB powers of 1024); at least :data:`MIN_MEMORY`."""
    m = _SIZE.fullmatch(text)
    unit = _UNITS.get(m.group(2).lower()) if m else None
    if m is None or unit is None:
        raise ConfigError(f"memory size {text!r}: expected a number and a unit, e.g. 2GB or 512MiB")
    value = float(m.group(1)) * unit
    if not math.isfinite(value) or value > 1 << 60:
        raise ConfigError(f"memory size {text!r} is too large")
    if value < MIN_MEMORY:
        raise ConfigError(f"memory size {text!r} is below the minimum of {MIN_MEMORY >> 20} MiB")
    return int(value)


def default_max_memory() -> int:
    """Half the machine's physical memory, at most 8 GiB (when it cannot be read: 8 GiB)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return MAX_DEFAULT
    return max(MIN_MEMORY, min(MAX_DEFAULT, int(total * DEFAULT_SHARE)))


def resident_bytes() -> int:
    """This process's resident memory now (0 where the platform does not say)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc.malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


def release_freed_memory() -> None:
    """Hand the memory of freed tensors back to the system (glibc's ``malloc_trim``).

    Observed tensors are a few to tens of MB each, and glibc raises its mmap threshold after
    freeing such blocks, so later ones come from the heap, whose free pages it keeps: resident
    memory then creeps up run after run (measured on a ResNet-18: 360 MB after 32 samples, 427 MB
    after 512). Trimming after each run keeps it where the first runs put it. A no-op off glibc.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


#: Resident memory may grow this much (or TRIM_SLACK_FRACTION of it, if more) over where the last
#: trim left it before :class:`FreedMemory` trims again.
TRIM_SLACK = 32 << 20
TRIM_SLACK_FRACTION = 0.05


class FreedMemory:
    """Calls :func:`release_freed_memory` after a run only when resident memory has grown.

    Trimming after every run keeps resident memory flat but hands the next run's tensors back to
    the system each time, so every run page-faults them in again (measured on a ResNet-18 at 128
    samples: 7.0 s with a trim per run, 5.5 s without). Here a run trims only when resident
    memory is more than ``TRIM_SLACK`` (or 5% of it, if more) above the level of reference: the
    first run's, raised to what each trim leaves (the memory that is really in use). Runs that
    reuse the memory their predecessor freed never trim; creep is cut off at the slack.
    """

    def __init__(self, slack: int = TRIM_SLACK) -> None:
        self._slack = slack
        self._base: int | None = None
        self.trims = 0

    def after_run(self) -> None:
        rss = resident_bytes()
        if self._base is None:
            self._base = rss
            return
        if rss > self._base + max(self._slack, int(self._base * TRIM_SLACK_FRACTION)):
            release_freed_memory()
            self.trims += 1
            self._base = max(self._base, resident_bytes())


def dim_sizes(symbols: Mapping[str, Sequence[str | None]], feed: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Symbolic dimension name -> its size in ``feed`` (``symbols``: each input's dim names)."""
    sizes: dict[str, int] = {}
    for name, dims in symbols.items():
        shape = np.shape(feed[name]) if name in feed else ()
        for symbol, size in zip(dims, shape, strict=False):
            if symbol:
                sizes.setdefault(symbol, int(size))
    return sizes


def value_bytes(value: ir.Value, sizes: Mapping[str, int]) -> int | None:
    """Bytes of ``value`` in a run whose symbolic dims have ``sizes``; None when unknown."""
    if value.shape is None or value.dtype is None:
        return None
    n = value.dtype.itemsize
    for d in value.shape:
        if isinstance(d, int):
            n *= d
        else:
            symbol = getattr(d, "value", None)
            if not isinstance(symbol, str) or symbol not in sizes:
                return None
            n *= sizes[symbol]
    return int(n)


@dataclass(frozen=True)
class ChunkPlan:
    """Observed tensors grouped into chunks (one session each), and each chunk's size in bytes."""

    chunks: tuple[tuple[str, ...], ...]
    chunk_bytes: tuple[int, ...]
    allowance: int
    over_budget: tuple[str, ...] = ()


def plan_chunks(sizes: Sequence[tuple[str, int]], allowance: int) -> ChunkPlan:
    """Pack ``(name, bytes)`` in order into chunks of at most ``allowance`` bytes each; a tensor
    larger than the allowance gets a chunk of its own (and is listed in ``over_budget``)."""
    chunks: list[list[str]] = []
    totals: list[int] = []
    over = []
    for name, n in sizes:
        if n > allowance:
            over.append(name)
        if chunks and totals[-1] + n <= allowance:
            chunks[-1].append(name)
            totals[-1] += n
        else:
            chunks.append([name])
            totals.append(n)
    return ChunkPlan(tuple(map(tuple, chunks)), tuple(totals), allowance, tuple(over))


def fixed_bytes(rss: int, model_bytes: int, sessions: int, feed_bytes: int, largest: int) -> int:
    """The part of the budget no chunk can use (see the module docstring)."""
    return rss + model_bytes * sessions + feed_bytes + 2 * largest


def chunk_allowance(max_memory: int, fixed: int) -> int:
    """Bytes one chunk's tensors may take, or a ConfigError when the fixed part leaves nothing."""
    left = max_memory - fixed
    if left <= 0:
        raise ConfigError(
            f"--max-memory {max_memory / 2**20:.0f} MiB is below what calibrating this model needs "
            f"before any tensor is observed (about {fixed / 2**20:.0f} MiB: the process, the model "
            "and one run); give a larger budget"
        )
    return left // IN_FLIGHT


__all__ = [
    "IN_FLIGHT",
    "ChunkPlan",
    "FreedMemory",
    "chunk_allowance",
    "default_max_memory",
    "dim_sizes",
    "fixed_bytes",
    "parse_memory",
    "plan_chunks",
    "release_freed_memory",
    "resident_bytes",
    "value_bytes",
]
