"""Calibration data: .npz sources, validation against the model inputs, re-batching."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest

from onnxq.calibration.data import InputSpec, model_input_specs, rebatch, validate_batches
from onnxq.calibration.sources import count_samples, load_calibration_data
from onnxq.errors import CalibrationDataError

TEXT = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[N, 3, 4] x, int64[N] ids, float[4] w) => (float[N, 3, 4] y) <float[4] w = {1.0, 2.0, 3.0, 4.0}> {
  y = Mul(x, w)
}
"""

SPECS = (
    InputSpec("x", np.dtype(np.float32), (None, 3, 4), ("N", None, None)),
    InputSpec("ids", np.dtype(np.int64), (None,), ("N",)),
)


def _batch(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.normal(size=(n, 3, 4)).astype(np.float32),
        "ids": np.arange(seed * 100, seed * 100 + n, dtype=np.int64),
    }


def test_model_input_specs_skip_initializers_and_mark_dynamic_dims() -> None:
    model = onnx.parser.parse_model(TEXT)
    assert model_input_specs(model) == SPECS
    import onnx_ir as ir

    assert model_input_specs(ir.from_proto(model)) == SPECS


def test_npz_file_is_one_batch_with_sample_count(tmp_path: Path) -> None:
    path = tmp_path / "calib.npz"
    np.savez(path, **_batch(7))
    data = load_calibration_data(path)
    batches = list(data)
    assert len(batches) == 1
    np.testing.assert_array_equal(batches[0]["ids"], np.arange(7))
    assert data.num_samples == 7 and count_samples(data) == 7


def test_directory_is_read_in_sorted_order_lazily(tmp_path: Path) -> None:
    np.savez(tmp_path / "b.npz", **_batch(3, seed=2))
    np.savez(tmp_path / "a.npz", **_batch(2, seed=1))
    (tmp_path / "c.npz").write_bytes(b"not a zip file")
    (tmp_path / "notes.txt").write_text("ignored")
    it = iter(load_calibration_data(tmp_path))
    assert list(next(it)["ids"]) == [100, 101]  # a.npz first
    assert list(next(it)["ids"]) == [200, 201, 202]
    with pytest.raises(CalibrationDataError, match=r"c\.npz: not an \.npz archive"):
        next(it)


def _touch(path: Path) -> Path:
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.npz", "calibration data not found"),
        (lambda p: p, r"holds no \.npz, \.npy or image calibration files"),
        (lambda p: _touch(p / "x.txt"), r"expected an \.npz or \.npy file, an image"),
    ],
)
def test_bad_paths_are_reported(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CalibrationDataError, match=message):
        load_calibration_data(make(tmp_path))


def test_valid_batches_pass_through_unchanged() -> None:
    src = [_batch(2, 1), _batch(5, 2)]
    out = list(validate_batches(SPECS, src))
    assert [b["ids"].tolist() for b in out] == [[100, 101], [200, 201, 202, 203, 204]]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.pop("ids"), r"batch 0: missing model input\(s\) 'ids'"),
        (
            lambda b: b.update(extra=np.zeros(2)),
            r"batch 0: unexpected input\(s\) 'extra' \(model inputs: 'x', 'ids'\)",
        ),
        (
            lambda b: b.update(x=b["x"].astype(np.float64)),
            "input 'x': expected dtype float32, got float64",
        ),
        (
            lambda b: b.update(x=b["x"][:, 0]),
            r"input 'x': expected rank 3 \(or 4 with a leading samples axis\) for float32\[\?, 3, 4\], "
            r"got shape \(2, 4\)",
        ),
        (
            lambda b: b.update(x=np.zeros((2, 3, 5), np.float32)),
            r"input 'x': expected float32\[\?, 3, 4\], got shape \(2, 3, 5\) "
            r"\(dimension 2 is 5, expected 4\)",
        ),
        (
            lambda b: b.update(ids=np.zeros(3, np.int64)),
            r"inputs disagree on the number of samples \('x': 2, 'ids': 3\)",
        ),
    ],
)
def test_mismatched_batches_name_the_input(change, message: str) -> None:  # type: ignore[no-untyped-def]
    batch = _batch(2)
    change(batch)
    with pytest.raises(CalibrationDataError, match=message):
        list(validate_batches(SPECS, [batch]))


def test_error_names_the_failing_batch_index() -> None:
    bad = _batch(2)
    bad["x"] = bad["x"].astype(np.float16)
    with pytest.raises(CalibrationDataError, match="calibration batch 2: input 'x'"):
        list(validate_batches(SPECS, [_batch(1), _batch(1), bad]))


@pytest.mark.parametrize("source", [[], [_batch(0)], iter([])])
def test_empty_calibration_set_is_an_error(source) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CalibrationDataError, match="calibration data is empty"):
        list(validate_batches(SPECS, source))


def test_batch_of_no_known_form_is_an_error() -> None:
    with pytest.raises(
        CalibrationDataError,
        match=r"calibration batch 0: expected a mapping of input name to array, a tuple .* got str",
    ):
        list(validate_batches(SPECS, ["x.npz"]))


def test_dynamic_batch_is_regrouped_into_chunks_of_16() -> None:
    src = [_batch(5, s) for s in range(4)] + [_batch(3, 9)]  # 23 samples
    runs = list(rebatch(SPECS, src))
    assert [n for _, n in runs] == [16, 7]
    assert [feed["x"].shape[0] for feed, _ in runs] == [16, 7]
    got = np.concatenate([feed["ids"] for feed, _ in runs])
    np.testing.assert_array_equal(got, np.concatenate([b["ids"] for b in src]))


def test_large_source_batch_is_split_without_copy() -> None:
    src = _batch(40)
    runs = list(rebatch(SPECS, [src], max_batch=16))
    assert [n for _, n in runs] == [16, 16, 8]
    assert np.shares_memory(runs[0][0]["x"], src["x"])


def test_static_batch_size_is_used_and_the_rest_dropped(caplog: pytest.LogCaptureFixture) -> None:
    specs = (InputSpec("x", np.dtype(np.float32), (4, 2)),)
    src = [{"x": np.arange(6 * 2, dtype=np.float32).reshape(6, 2)}, {"x": np.ones((5, 2), np.float32)}]
    with caplog.at_level(logging.WARNING):
        runs = list(rebatch(specs, src))
    assert [feed["x"].shape for feed, _ in runs] == [(4, 2), (4, 2)]
    np.testing.assert_array_equal(runs[1][0]["x"][:2], [[8, 9], [10, 11]])
    assert "3 calibration sample(s) dropped: the model's batch size is fixed at 4" in caplog.text


def test_stacked_samples_are_fed_one_at_a_time() -> None:
    specs = (InputSpec("x", np.dtype(np.float32), (3, 2)),)  # no batch axis in the model
    src = [{"x": np.arange(4 * 3 * 2, dtype=np.float32).reshape(4, 3, 2)}]
    assert list(validate_batches(specs, src))
    runs = list(rebatch(specs, src))
    assert [(feed["x"].shape, n) for feed, n in runs] == [((3, 2), 1)] * 4
    np.testing.assert_array_equal(runs[3][0]["x"], src[0]["x"][3])


def test_count_samples_of_in_memory_and_unknown_sources() -> None:
    assert count_samples([_batch(3), _batch(4)]) == 7
    assert count_samples(iter([_batch(3)])) is None


def test_npz_errors_name_the_file(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", **_batch(2))
    np.savez(tmp_path / "b.npz", x=np.zeros((2, 3, 4), np.float64), ids=np.zeros(2, np.int64))
    with pytest.raises(CalibrationDataError, match=r"b\.npz: input 'x': expected dtype float32, got float64"):
        list(validate_batches(SPECS, load_calibration_data(tmp_path)))


def test_scalar_input_in_a_file_needs_a_samples_axis() -> None:
    specs = (InputSpec("flag", np.dtype(np.bool_), ()),)
    with pytest.raises(
        CalibrationDataError, match=r"input 'flag': expected shape \(samples,\) .* got shape \(\)"
    ):
        list(validate_batches(specs, [{"flag": np.array(True)}], as_given=False))
    runs = list(rebatch(specs, validate_batches(specs, [{"flag": np.array([True, False])}])))
    assert [(feed["flag"].shape, bool(feed["flag"])) for feed, _ in runs] == [((), True), ((), False)]


def test_a_single_mapping_is_one_batch() -> None:
    out = list(validate_batches(SPECS, _batch(3)))
    assert len(out) == 1 and out[0]["ids"].tolist() == [0, 1, 2]


def test_minus_one_dims_are_dynamic_and_runs_always_make_progress() -> None:
    model = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 3] x) => (float[N, 3] y) { y = Neg(x) }
    """)
    model.graph.input[0].type.tensor_type.shape.dim[0].Clear()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = -1  # as PaddlePaddle writes it
    (spec,) = model_input_specs(model)
    assert spec.shape == (None, 3)
    x = np.zeros((5, 3), np.float32)
    assert [n for _, n in rebatch((spec,), [{"x": x}], max_batch=2)] == [2, 2, 1]
    with pytest.raises(CalibrationDataError, match="runs of 0 samples"):
        list(rebatch((spec,), [{"x": x}], max_batch=0))


STREAMING = (  # a voice-activity model: audio chunk, 0-d sample rate, recurrent state with batch on axis 1
    InputSpec("x", np.dtype(np.float32), (None, 512), ("batch", None)),
    InputSpec("sr", np.dtype(np.int64), ()),
    InputSpec("state", np.dtype(np.float32), (2, None, 128), (None, "batch", None)),
)


def _stream_run(batch: int = 1) -> dict[str, np.ndarray]:
    return {
        "x": np.ones((batch, 512), np.float32),
        "sr": np.array(16000, np.int64),
        "state": np.zeros((2, batch, 128), np.float32),
    }


def test_python_dicts_that_fit_the_inputs_are_runs_as_given() -> None:
    runs = list(
        rebatch(STREAMING, validate_batches(STREAMING, [_stream_run(), _stream_run()]), as_given=True)
    )
    assert [n for _, n in runs] == [1, 1]
    feed = runs[0][0]
    assert (feed["x"].shape, feed["sr"].shape, feed["state"].shape) == ((1, 512), (), (2, 1, 128))
    bad = _stream_run()
    bad["state"] = np.zeros((2, 3, 128), np.float32)  # batch 3 against the audio's 1, not a run as given
    with pytest.raises(CalibrationDataError, match="disagree on dimension 'batch' \\('x': 1, 'state': 3\\)"):
        list(validate_batches(STREAMING, [bad]))


def test_files_say_an_input_has_no_sample_axis_with_an_extra_leading_axis(tmp_path: Path) -> None:
    samples = 3
    np.savez(
        tmp_path / "stream.npz",
        x=np.arange(samples * 512, dtype=np.float32).reshape(samples, 512),  # batch axis = samples
        sr=np.full(samples, 16000, np.int64),  # 0-d input: one value per sample
        state=np.zeros((samples, 2, 1, 128), np.float32),  # (samples, *state shape)
    )
    source = load_calibration_data(tmp_path / "stream.npz")
    runs = list(rebatch(STREAMING, validate_batches(STREAMING, source), as_given=False))
    assert [n for _, n in runs] == [1, 1, 1]
    feed = runs[2][0]
    assert (feed["x"].shape, feed["sr"].shape, feed["state"].shape) == ((1, 512), (), (2, 1, 128))
    assert feed["x"][0, 0] == 2 * 512
