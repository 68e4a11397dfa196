"""Calibration on a Dask cluster: same result as one run, a lost worker's shard retried once."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from onnxq.api import prepare
from onnxq.calibration import dask as onnxq_dask
from onnxq.calibration.sources import CalibrationFiles, load_calibration_data
from onnxq.demo import asset_path
from onnxq.errors import OnnxqError
from onnxq.qconfig import QConfig, QSpec
from onnxq.scheme import PerChannel

distributed = pytest.importorskip("distributed")

MINMAX = QConfig(
    QSpec(observer="minmax"), QSpec("int8", symmetric=True, granularity=PerChannel(), observer="minmax")
)


class KillOnce:
    """A data source whose first reading, anywhere, kills the worker process reading it midway
    (after its first batch): a machine lost mid-task."""

    samples_on_axis0 = True

    def __init__(self, source: CalibrationFiles, marker: Path) -> None:
        self.source, self.marker = source, marker

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for index, batch in enumerate(self.source):
            if index == 1 and not self.marker.exists():
                self.marker.write_text("killed")
                os._exit(1)
            yield batch


@pytest.fixture(scope="module")
def cluster():  # type: ignore[no-untyped-def]
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
    ) as c:
        yield c


@pytest.fixture
def files(tmp_path: Path) -> CalibrationFiles:
    with np.load(asset_path("digits_calib.npz")) as z:
        x = z["input"]
    for i in range(4):  # four files of 16 samples: each shard reads all of them, keeps its rows
        np.savez(tmp_path / f"part{i}.npz", input=x[16 * i : 16 * (i + 1)])
    return load_calibration_data(tmp_path)


def _one_run(files: CalibrationFiles) -> bytes:
    p = prepare(str(asset_path("digits_cnn.onnx")), MINMAX)
    p.calibrate(files, progress=False)
    return p.convert().SerializeToString()


def _on_dask(cluster, data, shards: int | None = None) -> tuple[bytes, int]:  # type: ignore[no-untyped-def]
    p = prepare(str(asset_path("digits_cnn.onnx")), MINMAX)
    result = onnxq_dask.calibrate_on_dask(cluster.scheduler_address, p, data, shards=shards, progress=False)
    return p.convert(result).SerializeToString(), result.num_samples


@pytest.mark.parametrize("shards", [None, 5])
def test_shards_on_two_workers_give_one_run(cluster, files: CalibrationFiles, shards: int | None) -> None:
    got, n = _on_dask(cluster, files, shards)
    assert n == 64
    assert got == _one_run(files)


def test_a_worker_lost_mid_shard_is_retried_and_counted_once(cluster, files, tmp_path: Path) -> None:
    marker = tmp_path / "killed"
    got, n = _on_dask(cluster, KillOnce(files, marker), 2)
    assert marker.exists()  # a worker did die
    assert n == 64  # the lost shard counted once
    assert got == _one_run(files)


def test_the_only_worker_lost_mid_shard_is_replaced_and_the_run_completes(files, tmp_path: Path) -> None:
    """The model reaches the workers as a task's result: when the one worker holding it dies, the
    scheduler recomputes it on the restarted worker (scattered data would be lost for good, and
    every shard cancelled)."""
    marker = tmp_path / "killed"
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
    ) as one:
        got, n = _on_dask(one, KillOnce(files, marker), 2)
    assert marker.exists() and n == 64
    assert got == _one_run(files)


def test_an_unreachable_scheduler_is_one_line(monkeypatch, files) -> None:
    monkeypatch.setattr(onnxq_dask, "CONNECT_TIMEOUT_S", 1)
    p = prepare(str(asset_path("digits_cnn.onnx")), MINMAX)
    with pytest.raises(OnnxqError, match=r"cannot reach the Dask scheduler at 'tcp://127\.0\.0\.1:9'"):
        onnxq_dask.calibrate_on_dask("tcp://127.0.0.1:9", p, files, progress=False)


def test_a_data_error_on_a_worker_names_the_shard(cluster, files, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(files.files[0], bad / "a.npz")
    np.savez(bad / "b.npz", other=np.zeros((4, 1, 8, 8), np.float32))
    p = prepare(str(asset_path("digits_cnn.onnx")), MINMAX)
    with pytest.raises(OnnxqError, match=r"shard \d/2: .*b\.npz.*missing model input\(s\) 'input'"):
        onnxq_dask.calibrate_on_dask(
            cluster.scheduler_address, p, load_calibration_data(bad), shards=2, progress=False
        )


def test_the_command_line_writes_what_one_run_writes(
    cluster, files, tmp_path: Path, capsys, observer_ranges
) -> None:
    from onnxq.cli import main

    model = str(asset_path("digits_cnn.onnx"))
    calib = str(files.files[0].parent)
    one = tmp_path / "one.json"
    fanned = tmp_path / "fanned.json"
    assert main(["calibrate", model, "--calib", calib, "-o", str(one), "--no-progress"]) == 0
    args = ["calibrate", model, "--calib", calib, "-o", str(fanned), "--no-progress"]
    assert main([*args, "--dask", cluster.scheduler_address, "--shards", "3"]) == 0
    # the default observes histograms: their merge is exact, so the files agree
    assert observer_ranges(json.loads(fanned.read_text())) == observer_ranges(json.loads(one.read_text()))
    capsys.readouterr()
    bad = tmp_path / "bad.json"
    assert main([*args[:-3], "-o", str(bad), "--dask", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the Dask scheduler" in err and len(err.strip().splitlines()) == 1
    assert not bad.exists()
