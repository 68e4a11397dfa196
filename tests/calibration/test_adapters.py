"""Batches from DataLoaders, generators, tuples and tensors become {input name: array}."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from onnxq.calibration.adapters import adapt, to_numpy
from onnxq.calibration.data import InputSpec, validate_batches
from onnxq.errors import CalibrationDataError

ONE = (InputSpec("x", np.dtype(np.float32), (None, 4), ("N", None)),)
TWO = (
    InputSpec("a", np.dtype(np.float32), (None, 4), ("N", None)),
    InputSpec("b", np.dtype(np.int64), (None,), ("N",)),
)


def _a(n: int = 2) -> np.ndarray:
    return np.arange(n * 4, dtype=np.float32).reshape(n, 4)


def test_tuples_map_to_inputs_in_order() -> None:
    (batch,) = adapt(TWO, [(_a(), np.arange(2))])
    assert list(batch) == ["a", "b"]
    np.testing.assert_array_equal(batch["b"], [0, 1])


def test_trailing_labels_are_ignored_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="onnxq"):
        batches = list(adapt(ONE, [(_a(), np.array([3, 1])), [_a(), np.array([0, 2])]]))
    assert [list(b) for b in batches] == [["x"], ["x"]]
    assert caplog.text.count("1 item(s) after the model's inputs (labels?); they are not used") == 1


@pytest.mark.parametrize("inputs", [(_a(), np.arange(2)), {"a": _a(), "b": np.arange(2)}])
def test_nested_inputs_then_labels(inputs: object) -> None:
    (batch,) = adapt(TWO, [(inputs, np.zeros(2))])
    assert sorted(batch) == ["a", "b"]


def test_short_tuple_names_the_missing_inputs() -> None:
    with pytest.raises(
        CalibrationDataError,
        match=r"calibration batch 1: 1 array\(s\) for the model's 2 inputs \(missing 'b'\)",
    ):
        list(validate_batches(TWO, [(_a(), np.arange(2)), (_a(),)]))


def test_bare_arrays_feed_the_only_input_and_a_single_one_is_one_batch() -> None:
    assert [b["x"].shape for b in adapt(ONE, (x for x in [_a(1), _a(3)]))] == [(1, 4), (3, 4)]
    (only,) = validate_batches(ONE, _a(5))
    assert only["x"].shape == (5, 4)
    with pytest.raises(CalibrationDataError, match="a single array feeds a model with one input"):
        list(adapt(TWO, [_a()]))


def test_sources_keep_their_labels_and_axis0_convention() -> None:
    class Labelled(list):  # type: ignore[type-arg]
        samples_on_axis0 = True

        def batch_label(self, index: int) -> str:
            return f"shard-{index}.bin"

    source = adapt(TWO, Labelled([(_a(), np.arange(2))]))
    assert source.samples_on_axis0 and source.batch_label(0) == "shard-0.bin"
    assert not adapt(TWO, []).samples_on_axis0


@pytest.fixture
def torch():  # type: ignore[no-untyped-def]
    return pytest.importorskip("torch")


def test_dataloader_of_tensors_and_labels_calibrates_like_arrays(torch) -> None:  # type: ignore[no-untyped-def]
    from torch.utils.data import DataLoader, TensorDataset

    x = torch.arange(20 * 4, dtype=torch.float32).reshape(20, 4)
    labels = torch.arange(20) % 3
    loader = DataLoader(TensorDataset(x, labels), batch_size=6)
    batches = list(validate_batches(ONE, loader))
    assert [b["x"].shape for b in batches] == [(6, 4), (6, 4), (6, 4), (2, 4)]
    assert all(type(b["x"]) is np.ndarray for b in batches)
    np.testing.assert_array_equal(np.concatenate([b["x"] for b in batches]), x.numpy())


def test_dataloader_of_dicts_and_tensors_needing_grad(torch) -> None:  # type: ignore[no-untyped-def]
    from torch.utils.data import DataLoader

    rows = [{"a": torch.ones(4, requires_grad=True), "b": torch.tensor(i)} for i in range(5)]
    batches = list(validate_batches(TWO, DataLoader(rows, batch_size=2)))  # type: ignore[arg-type]
    assert [b["b"].tolist() for b in batches] == [[0, 1], [2, 3], [4]]


def test_tensor_of_no_numpy_dtype_is_one_line(torch) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(
        CalibrationDataError, match=r"batch 0: input 'x': cannot convert a torch tensor of torch\.bfloat16"
    ):
        list(validate_batches(ONE, [torch.zeros(2, 4, dtype=torch.bfloat16)]))
    assert to_numpy(torch.ones(2), "t").dtype == np.float32
