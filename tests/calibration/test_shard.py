"""Shards: every sample in exactly one shard, selected by its position in the whole data set."""

from __future__ import annotations

import numpy as np
import pytest

from onnxq.calibration.data import InputSpec
from onnxq.calibration.shard import Shard, select_shard
from onnxq.errors import ConfigError

SPECS = (InputSpec("x", np.dtype(np.float32), (None, 3)),)


def _batches(sizes: list[int]) -> list[dict[str, np.ndarray]]:
    start, out = 0, []
    for n in sizes:
        out.append({"x": np.arange(start, start + n, dtype=np.float32)[:, None].repeat(3, axis=1)})
        start += n
    return out


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_partition_the_samples_by_position(count: int) -> None:
    batches = _batches([5, 1, 8, 3])
    seen = []
    for i in range(count):
        got = list(select_shard(SPECS, batches, Shard(i, count), as_given=False))
        ids = [int(v) for b in got for v in b["x"][:, 0]]
        assert all(k % count == i for k in ids)
        seen += ids
    assert sorted(seen) == list(range(17))


def test_runs_as_given_are_units() -> None:
    specs = (InputSpec("x", np.dtype(np.float32), (2, 3)),)  # static batch: each dict is one run
    batches = _batches([2, 2, 2, 2, 2])
    got = list(select_shard(specs, batches, Shard(1, 2), as_given=True))
    assert [int(b["x"][0, 0]) for b in got] == [2, 6]
    assert all(b["x"].shape == (2, 3) for b in got)


def test_parse_and_bounds() -> None:
    assert Shard.parse(" 2/5 ") == Shard(2, 5)
    assert str(Shard(0, 4)) == "0/4"
    for bad in ("5/5", "-1/3", "1/0", "a/b", "1", "1/2/3"):
        with pytest.raises(ConfigError, match="shard"):
            Shard.parse(bad)
    with pytest.raises(ConfigError, match="must be an int"):
        Shard(True, 2)  # type: ignore[arg-type]
