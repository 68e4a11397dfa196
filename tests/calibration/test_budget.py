"""The memory budget's arithmetic: sizes, units, chunk packing, the fixed part."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest

from onnxq.calibration.budget import (
    IN_FLIGHT,
    MIN_MEMORY,
    chunk_allowance,
    default_max_memory,
    dim_sizes,
    fixed_bytes,
    parse_memory,
    plan_chunks,
    resident_bytes,
    value_bytes,
)
from onnxq.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("2GB", 2 * 10**9),
        ("1.5 GiB", 3 << 29),
        ("512MiB", 512 << 20),
        ("100mb", 10**8),
        (str(1 << 30), 1 << 30),
    ],
)
def test_parse_memory(text: str, want: int) -> None:
    assert parse_memory(text) == want


@pytest.mark.parametrize("text", ["", "2 parsecs", "GB", "-1GB", "1e9", "10MB", "9" * 30 + "TB"])
def test_parse_memory_refuses(text: str) -> None:
    with pytest.raises(ConfigError, match="memory size"):
        parse_memory(text)


def test_freed_memory_is_released() -> None:
    from onnxq.calibration.budget import release_freed_memory

    before = resident_bytes()
    blocks = [np.ones(1 << 20, np.float32) * i for i in range(64)]  # 256 MiB, then freed
    del blocks
    release_freed_memory()
    assert resident_bytes() < before + (64 << 20)


def test_default_is_bounded() -> None:
    assert MIN_MEMORY <= default_max_memory() <= 8 << 30
    assert resident_bytes() > 0


def _value(shape: list[int | str], dtype: ir.DataType = ir.DataType.FLOAT) -> ir.Value:
    return ir.Value(name="v", shape=ir.Shape(shape), type=ir.TensorType(dtype))


def test_value_bytes_resolves_symbols_from_the_feed() -> None:
    sizes = dim_sizes({"ids": ("batch", "seq")}, {"ids": np.zeros((4, 128), np.int64)})
    assert sizes == {"batch": 4, "seq": 128}
    assert value_bytes(_value(["batch", "seq", 768]), sizes) == 4 * 128 * 768 * 4
    assert value_bytes(_value(["batch", 10], ir.DataType.FLOAT16), sizes) == 4 * 10 * 2
    assert value_bytes(_value(["batch", "heads"]), sizes) is None  # unknown symbol
    assert value_bytes(ir.Value(name="u"), sizes) is None  # no shape at all


def test_plan_chunks_packs_in_order_and_isolates_the_oversized() -> None:
    plan = plan_chunks([("a", 40), ("b", 50), ("c", 20), ("d", 150), ("e", 10)], 100)
    assert plan.chunks == (("a", "b"), ("c",), ("d",), ("e",))
    assert plan.chunk_bytes == (90, 20, 150, 10)
    assert plan.over_budget == ("d",)
    assert max(plan_chunks([("a", 1)] * 10, 3).chunk_bytes) == 3


def test_allowance_and_refusal() -> None:
    fixed = fixed_bytes(rss=100, model_bytes=50, sessions=2, feed_bytes=10, largest=5)
    assert fixed == 100 + 100 + 10 + 10
    assert chunk_allowance(1000, fixed) == (1000 - fixed) // IN_FLIGHT
    with pytest.raises(ConfigError, match="below what calibrating this model needs"):
        chunk_allowance(200, fixed)


def test_freed_memory_trims_only_when_resident_memory_grew(monkeypatch: pytest.MonkeyPatch) -> None:
    from onnxq.calibration import budget

    rss = [300 << 20]
    trims: list[int] = []

    def trim() -> None:  # the trim hands back what was freed: 310 MiB stay in use
        trims.append(rss[0])
        rss[0] = 310 << 20

    monkeypatch.setattr(budget, "resident_bytes", lambda: rss[0])
    monkeypatch.setattr(budget, "release_freed_memory", trim)
    freed = budget.FreedMemory(slack=32 << 20)
    freed.after_run()  # the first run sets the level: 300 MiB
    rss[0] += 20 << 20
    freed.after_run()
    assert trims == []  # within the slack: the next run reuses the freed memory
    rss[0] += 20 << 20
    freed.after_run()
    assert trims == [340 << 20] and freed.trims == 1  # 340 > 300 + 32; the level is now 310
    rss[0] = 340 << 20
    freed.after_run()
    assert freed.trims == 1  # 340 <= 310 + 32
    rss[0] = 343 << 20
    freed.after_run()
    assert freed.trims == 2
