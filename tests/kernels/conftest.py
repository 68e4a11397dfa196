"""Fixtures of the native kernel tests.

``isa`` (parametrised)
    One test per ISA name of :data:`onnxq.kernels.ISAS`; ISAs this CPU lacks are skipped. The ISA
    is active (``use_isa``) for the duration of the test, so a test body just calls the wrappers::

        def test_x(isa):
            assert kernels.quantize(x, 0.1, 0) ...   # runs on `isa`

``rng``
    A ``numpy.random.Generator`` seeded from the test id (reproducible across runs).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import numpy as np
import pytest

from onnxq.kernels import ISAS, available_isas, use_isa


@pytest.fixture(params=ISAS)
def isa(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param not in available_isas():
        pytest.skip(f"this CPU lacks {request.param}")
    with use_isa(request.param) as active:
        yield active


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
