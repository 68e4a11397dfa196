"""Calibration under a memory budget: observed tensors fetched in chunks give the same result."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnx_ir as ir
import pytest

from onnxq.calibration.chunked import ChunkedSessions
from onnxq.calibration.engine import calibrate
from onnxq.calibration.observers import make_observer
from onnxq.errors import ConfigError

WIDTH = 1 << 20  # 4 MiB per tensor per sample
OPS = ("Neg", "Abs", "Sigmoid", "Neg", "Relu", "Neg", "Exp", "Neg")


def _chain() -> onnx.ModelProto:
    h = onnx.helper
    nodes, prev = [], "x"
    for i, op in enumerate(OPS):
        nodes.append(h.make_node(op, [prev], [f"t{i}"]))
        prev = f"t{i}"
    graph = h.make_graph(
        nodes,
        "chain",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", WIDTH])],
        [h.make_tensor_value_info(prev, onnx.TensorProto.FLOAT, ["n", WIDTH])],
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


RSS = 200 << 20  # the process's resident memory, as the budget sees it (fixed: tests stay exact)


@pytest.fixture(autouse=True)
def fixed_rss(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxq.calibration.chunked as chunked

    monkeypatch.setattr(chunked, "resident_bytes", lambda: RSS)


def _data(n: int = 5) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [{"x": rng.normal(size=(1, WIDTH)).astype(np.float32)} for _ in range(n)]


def _states(max_memory: int | None, kind: str = "minmax") -> dict[str, dict]:
    observers = {f"t{i}": make_observer(kind) for i in range(len(OPS))}
    result = calibrate(_chain(), observers, _data(), progress=False, max_memory=max_memory)
    assert result.num_samples == 5
    return {k: v.state_dict() for k, v in result.observers.items()}


@pytest.mark.parametrize("kind", ["minmax", "histogram"])
def test_chunks_give_what_one_session_gives(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    budget = RSS + (72 << 20)  # room for about three tensors a chunk
    with caplog.at_level(logging.INFO, logger="onnxq"):
        chunked = _states(budget, kind)
    assert any(
        "in 3 chunks" in r.getMessage() or "chunks of at most" in r.getMessage() for r in caplog.records
    )
    assert chunked == _states(None, kind)


def test_every_chunk_stays_within_its_allowance() -> None:
    model = ir.from_proto(_chain())
    from onnxq.passes.shapes import infer_shapes

    infer_shapes(model)
    names = [f"t{i}" for i in range(len(OPS))]
    with ChunkedSessions(model, names, RSS + (72 << 20), {"x": ("n", None)}) as sessions:
        got = {}
        for chunk in sessions.run(_data(1)[0], 0, 1):
            assert sum(v.nbytes for _, v in chunk) <= sessions.plan.allowance  # type: ignore[union-attr]
            got.update(chunk)
        assert sessions.plan is not None and len(sessions.plan.chunks) > 1
        assert sorted(got) == sorted(names)
        assert sessions.run_size() == 1  # a chunk of one sample already fills the allowance
    with ChunkedSessions(model, names, None, {"x": ("n", None)}) as sessions:
        assert [len(c) for c in sessions.run(_data(1)[0], 0, 1)] == [len(OPS)]


def test_a_budget_below_the_fixed_part_is_refused() -> None:
    observers = {"t0": make_observer("minmax")}
    with pytest.raises(ConfigError, match=r"--max-memory .* is below what calibrating this model needs"):
        calibrate(_chain(), observers, _data(1), progress=False, max_memory=RSS // 2)
