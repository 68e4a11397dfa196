"""onnxq calibrate / merge-stats / quantize --stats: files, shards, and what they refuse."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from onnxq.cli import main
from onnxq.demo import asset_path
from onnxq.qconfig import QConfig, QConfigMapping, QSpec
from onnxq.scheme import PerChannel

MINMAX = QConfigMapping(
    QConfig(
        QSpec(observer="minmax"), QSpec("int8", symmetric=True, granularity=PerChannel(), observer="minmax")
    )
)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    for name in ("digits_cnn.onnx", "digits_calib.npz"):
        shutil.copy(asset_path(name), tmp_path / name)
    (tmp_path / "minmax.json").write_text(json.dumps(MINMAX.to_dict()))
    for observer in ("entropy", "percentile", "mse"):
        mapping = QConfigMapping(QConfig(QSpec(observer=observer), MINMAX.global_qconfig.weight))
        (tmp_path / f"{observer}.json").write_text(json.dumps(mapping.to_dict()))
    return tmp_path


def _qconfig(work: Path, name: str) -> object:
    """A qconfig file of the work directory, or a preset's name."""
    return work / name if (work / name).exists() else name


def _run(*args: object) -> int:
    return main([str(a) for a in args])


def _calibrate(work: Path, out: str, *extra: object, qconfig: str = "minmax.json") -> None:
    model, calib = work / "digits_cnn.onnx", work / "digits_calib.npz"
    assert (
        _run(
            "calibrate",
            model,
            "--calib",
            calib,
            "-o",
            work / out,
            "--qconfig",
            _qconfig(work, qconfig),
            "--no-progress",
            *extra,
        )
        == 0
    )


def _quantize(work: Path, out: str, *how: object, qconfig: str = "minmax.json") -> bytes:
    model = work / "digits_cnn.onnx"
    assert (
        _run("quantize", model, "-o", work / out, "--qconfig", _qconfig(work, qconfig), "--no-progress", *how)
        == 0
    )
    return (work / out).read_bytes()


def _quantize_stats(work: Path, stats: Path, qconfig: object = None) -> int:
    """Exit status of quantizing to q.onnx with ``stats`` (and the minmax qconfig by default)."""
    qconfig = work / "minmax.json" if qconfig is None else qconfig
    return _run(
        "quantize", work / "digits_cnn.onnx", "-o", work / "q.onnx", "--qconfig", qconfig, "--stats", stats
    )


def test_stats_file_gives_the_model_calib_gives(work: Path) -> None:
    _calibrate(work, "stats.json")
    direct = _quantize(work, "direct.onnx", "--calib", work / "digits_calib.npz")
    assert _quantize(work, "from_stats.onnx", "--stats", work / "stats.json") == direct
    state = json.loads((work / "stats.json").read_text())
    assert state["num_samples"] == 64 and state["version"] == 1


@pytest.mark.parametrize(
    ("count", "qconfig"),
    [
        (2, "minmax.json"),
        (3, "minmax.json"),
        (3, "x86"),
        (2, "entropy.json"),
        (3, "percentile.json"),
        (2, "mse.json"),
    ],
)
def test_merged_shards_give_the_model_one_run_gives(
    work: Path, count: int, qconfig: str, observer_ranges
) -> None:
    """Shards merge into exactly what one run gives: min/max, and the histograms, whose counts on
    their power-of-two grids depend on the data set alone (the x86 preset observes histograms)."""
    _calibrate(work, "all.json", qconfig=qconfig)
    for i in range(count):
        _calibrate(work, f"s{i}.json", "--shard", f"{i}/{count}", qconfig=qconfig)
    shards = [work / f"s{i}.json" for i in range(count)]
    assert _run("merge-stats", *shards, "-o", work / "merged.json") == 0
    merged = json.loads((work / "merged.json").read_text())
    assert merged["num_samples"] == 64
    assert observer_ranges(merged) == observer_ranges(json.loads((work / "all.json").read_text()))
    whole = _quantize(work, "whole.onnx", "--stats", work / "all.json", qconfig=qconfig)
    assert _quantize(work, "merged.onnx", "--stats", work / "merged.json", qconfig=qconfig) == whole


def test_stats_of_another_model_are_refused_naming_the_tensor(work: Path, capsys) -> None:
    _calibrate(work, "stats.json")
    state = json.loads((work / "stats.json").read_text())
    name = next(iter(state["observers"]))
    state["observers"]["conv_of_another_model"] = state["observers"].pop(name)
    (work / "other.json").write_text(json.dumps(state))
    capsys.readouterr()
    assert _quantize_stats(work, work / "other.json") == 2
    err = capsys.readouterr().err
    assert "'conv_of_another_model', which this model does not have" in err and len(err.splitlines()) == 1
    assert not (work / "q.onnx").exists()


def test_stats_of_another_observer_are_refused(work: Path, capsys) -> None:
    _calibrate(work, "stats.json")
    capsys.readouterr()
    assert _quantize_stats(work, work / "stats.json", "x86") == 2
    assert (
        "calibrated with observer 'minmax', but the qconfig asks for 'histogram'" in capsys.readouterr().err
    )


@pytest.mark.parametrize("damage", ["truncate", "not_json", "bad_state", "empty"])
def test_a_corrupt_stats_file_is_one_line(work: Path, capsys, damage: str) -> None:
    _calibrate(work, "stats.json")
    path = work / "stats.json"
    text = path.read_text()
    path.write_text(
        {
            "truncate": text[: len(text) // 2],
            "not_json": "\x00\x01",
            "empty": "",
            "bad_state": text.replace('"minmax"', '"nonesuch"', 1),
        }[damage]
    )
    capsys.readouterr()
    assert _quantize_stats(work, path) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "stats.json" in err
    assert not (work / "q.onnx").exists()


def test_merge_refuses_files_that_are_not_shards_of_one_calibration(work: Path, capsys) -> None:
    _calibrate(work, "a.json", "--shard", "0/2")
    state = json.loads((work / "a.json").read_text())
    state["observers"].pop(next(iter(state["observers"])))
    (work / "b.json").write_text(json.dumps(state))
    capsys.readouterr()
    assert _run("merge-stats", work / "a.json", work / "b.json", "-o", work / "m.json") == 2
    assert "are not shards of one calibration" in capsys.readouterr().err
    assert not (work / "m.json").exists()


def test_outputs_never_overwrite_inputs(work: Path, capsys) -> None:
    _calibrate(work, "a.json", "--shard", "0/2")
    before = (work / "a.json").read_bytes()
    assert _run("merge-stats", work / "a.json", work / "a.json", "-o", work / "a.json") == 2
    assert (work / "a.json").read_bytes() == before
    model, calib = work / "digits_cnn.onnx", work / "digits_calib.npz"
    for out in (model, calib, work / "minmax.json"):
        data = out.read_bytes()
        assert _run("calibrate", model, "--calib", calib, "-o", out, "--qconfig", work / "minmax.json") == 2
        assert out.read_bytes() == data
    assert _run("quantize", model, "-o", work / "a.json", "--stats", work / "a.json") == 2
    assert (work / "a.json").read_bytes() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shard", "2/2"], "shard index must be in [0, 1]"),
        (["--shard", "x"], "expected i/N"),
        (["--max-memory", "lots"], "memory size 'lots'"),
        (["--max-memory", "10MB"], "below the minimum"),
        (["--shards", "2"], "--shards needs --dask"),
    ],
)
def test_bad_calibrate_options_are_one_line(work: Path, capsys, args: list[str], message: str) -> None:
    capsys.readouterr()
    model, calib = work / "digits_cnn.onnx", work / "digits_calib.npz"
    assert _run("calibrate", model, "--calib", calib, "-o", work / "s.json", *args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (work / "s.json").exists()


def test_an_empty_shard_is_one_line(work: Path, capsys) -> None:
    with np.load(work / "digits_calib.npz") as z:
        np.savez(work / "two.npz", input=z["input"][:2])
    capsys.readouterr()
    assert (
        _run(
            "calibrate",
            work / "digits_cnn.onnx",
            "--calib",
            work / "two.npz",
            "-o",
            work / "s.json",
            "--shard",
            "3/4",
        )
        == 2
    )
    assert "shard 3/4 of the calibration data is empty" in capsys.readouterr().err


def test_quantize_takes_stats_or_calib_not_both(work: Path, capsys) -> None:
    _calibrate(work, "stats.json")
    assert (
        _run(
            "quantize",
            work / "digits_cnn.onnx",
            "-o",
            work / "q.onnx",
            "--stats",
            work / "stats.json",
            "--calib",
            work / "digits_calib.npz",
        )
        == 2
    )
    assert "give --calib or --stats, not both" in capsys.readouterr().err
    onnx.checker.check_model(onnx.load(str(asset_path("digits_cnn.onnx"))))
