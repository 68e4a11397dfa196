"""Helpers shared by the native kernel tests (importable at collection time, unlike fixtures).

The ``isa`` and ``rng`` fixtures live in ``conftest.py``; this module holds the plain values and
functions the tests use in ``parametrize`` lists and bodies::

    from _helpers import DTYPES, ZERO_POINTS, assert_same_bits, random_q
"""

from __future__ import annotations

import numpy as np

F32 = np.float32
DTYPES = [np.uint8, np.int8]
# the edges and the middle of each 8-bit range: (low, mid, high)
ZERO_POINTS: dict[type, tuple[int, int, int]] = {np.uint8: (0, 128, 255), np.int8: (-128, 0, 127)}


def random_q(rng: np.random.Generator, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    """Uniform integers over the whole range of ``dtype`` (uint8 / int8), of the given shape."""
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, shape).astype(dtype)


def assert_same_bits(a: np.ndarray, b: np.ndarray) -> None:
    """Both float32 of one shape, equal bit for bit (NaN payloads and the sign of zero count)."""
    assert a.shape == b.shape and a.dtype == b.dtype == F32, (a.shape, a.dtype, b.shape, b.dtype)
    np.testing.assert_array_equal(a.view(np.int32), b.view(np.int32))
