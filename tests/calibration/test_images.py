"""Image folders: file listing, preprocessing completed from the model, checks before the first run,
and calibration of a small conv model end to end."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest

from onnxq.calibration.data import InputSpec, model_input_specs, validate_batches
from onnxq.calibration.images import ImageFolder, bind_preprocess, image_files
from onnxq.calibration.imaging import load_image
from onnxq.calibration.preprocess import PREPROCESS_PRESETS, ImagePreprocess
from onnxq.calibration.sources import count_samples, load_calibration_data
from onnxq.errors import CalibrationDataError

Image = pytest.importorskip("PIL.Image")


def _spec(shape: tuple[int | None, ...], dtype: type = np.float32, name: str = "x") -> InputSpec:
    return InputSpec(name, np.dtype(dtype), shape)


NCHW = (_spec((None, 3, 8, 8)),)


def _save(path: Path, seed: int = 0, size: tuple[int, int] = (10, 12)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_image_files_are_sorted_recursive_on_request_and_any_case(tmp_path: Path) -> None:
    for rel in ("b.PNG", "a.jpg", "sub/c.jpeg", "sub/deeper/d.png"):
        _save(tmp_path / rel)
    (tmp_path / "notes.txt").write_text("no")
    (tmp_path / "dir.png").mkdir()
    assert [p.name for p in image_files(tmp_path)] == ["a.jpg", "b.PNG"]
    names = [p.relative_to(tmp_path).as_posix() for p in image_files(tmp_path, recursive=True)]
    assert names == ["a.jpg", "b.PNG", "sub/c.jpeg", "sub/deeper/d.png"]


@pytest.mark.parametrize(
    ("spec", "size", "layout", "order", "dtype", "scale"),
    [
        (_spec((None, 3, 8, 6)), (8, 6), "NCHW", "RGB", "float32", 1 / 255),
        (_spec((1, 8, 6, 3), np.uint8), (8, 6), "NHWC", "RGB", "uint8", 1.0),
        (_spec((None, 1, 5, 5), np.float16), (5, 5), "NCHW", "L", "float16", 1 / 255),
        (_spec((3, 8, 6)), (8, 6), "NCHW", "RGB", "float32", 1 / 255),  # no batch axis
    ],
)
def test_what_is_inferred_from_the_model(
    spec: InputSpec, size: tuple[int, int], layout: str, order: str, dtype: str, scale: float
) -> None:
    spec = InputSpec(
        spec.name, spec.dtype, tuple(d if isinstance(d, int) else None for d in spec.shape or ())
    )
    resolved, inferred = bind_preprocess(None, (spec,))
    assert (resolved.size, resolved.layout, resolved.channel_order, resolved.dtype) == (
        size,
        layout,
        order,
        dtype,
    )
    assert resolved.scale == pytest.approx(scale) and resolved.input_name == "x" and resolved.complete
    assert [i.split()[0] for i in inferred] == ["size", "layout", "channel_order", "dtype", "scale"]


def test_nothing_is_inferred_from_a_complete_spec() -> None:
    imagenet = PREPROCESS_PRESETS["imagenet"]
    resolved, inferred = bind_preprocess(imagenet, (_spec((None, 3, 224, 224)),))
    assert inferred == () and resolved == replace(imagenet, input_name="x")


@pytest.mark.parametrize(
    ("preprocess", "specs", "message"),
    [
        (
            None,
            (_spec((None, 3, None, None)),),
            r"cannot infer the image size from input 'x' float32\[\?, 3, \?, \?\]",
        ),
        (
            ImagePreprocess(size=(16, 16)),
            NCHW,
            r"image size 16x16 does not match input 'x' float32\[\?, 3, 8, 8\] \(NCHW\)",
        ),
        (ImagePreprocess(dtype="float16"), NCHW, r"image dtype float16 does not match input 'x' float32"),
        (ImagePreprocess(input_name="img"), NCHW, r"input_name 'img' is not a model input \('x'\)"),
        (
            None,
            (*NCHW, _spec((None,), np.int64, "k")),
            r"feeds a model with one input; this one has 2 \('x', 'k'\)",
        ),
        (None, (_spec((None, 10)),), r"input 'x' float32\[\?, 10\] is not an image input"),
        (None, (_spec((None, 4, 8, 8)),), "cannot tell the layout of input 'x'"),
        (ImagePreprocess(layout="NCHW"), (_spec((None, 4, 8, 8)),), "has 4 channels: images give 1"),
        (ImagePreprocess(channel_order="L"), NCHW, r"channel_order 'L' does not give the 3 channel\(s\)"),
        (
            None,
            (_spec((None, 3, 8, 8), np.float64),),
            "images give float32, float16, uint8, int8, not float64",
        ),
        (
            ImagePreprocess(mean=(1, 2, 3)),
            (_spec((None, 1, 8, 8)),),
            r"image mean has 3 values for the 1 channel",
        ),
    ],
)
def test_images_that_cannot_feed_the_input_are_refused_naming_it(
    preprocess: ImagePreprocess | None, specs: tuple[InputSpec, ...], message: str
) -> None:
    with pytest.raises(CalibrationDataError, match=message):
        bind_preprocess(preprocess, specs)


def test_binding_logs_what_it_inferred(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = ImageFolder([_save(tmp_path / "a.png")])
    with caplog.at_level(logging.INFO, logger="onnxq"):
        folder.for_inputs(NCHW)
        ImageFolder(folder.files, ImagePreprocess(layout="NCHW")).for_inputs(NCHW)
    first, second = caplog.records
    assert first.levelno == logging.WARNING and "no image preprocessing given: size 8x8" in first.getMessage()
    assert "taken from input 'x'" in first.getMessage()
    assert second.levelno == logging.INFO and "layout" not in second.getMessage().split(" taken")[0]


def test_unbound_folder_needs_a_complete_spec(tmp_path: Path) -> None:
    path = _save(tmp_path / "a.png")
    with pytest.raises(CalibrationDataError, match="leaves fields to the model"):
        next(iter(ImageFolder([path])))
    complete = ImagePreprocess(size=(4, 4), channel_order="RGB", layout="NHWC", dtype="uint8", scale=1.0)
    (arr,) = ImageFolder([path], complete)  # no input name: bare arrays, the adapter maps them
    assert arr.shape == (1, 4, 4, 3) and arr.dtype == np.uint8


def test_a_bad_image_stops_calibration_before_the_first_batch(tmp_path: Path) -> None:
    for i in range(3):
        _save(tmp_path / f"{i}.png", seed=i)
    (tmp_path / "3.png").write_text("not an image")
    batches = validate_batches(NCHW, load_calibration_data(tmp_path))
    with pytest.raises(CalibrationDataError, match=r"3\.png: not a JPEG or PNG image"):
        next(batches)


def test_folder_batches_are_the_preprocessed_images_in_order(tmp_path: Path) -> None:
    paths = [_save(tmp_path / "imgs" / f"{i}.jpg", seed=i) for i in range(3)]
    source = load_calibration_data(tmp_path / "imgs", preprocess=ImagePreprocess(interpolation="nearest"))
    assert isinstance(source, ImageFolder) and count_samples(source) == 3
    batches = list(validate_batches(NCHW, source))
    bound = ImageFolder(paths, ImagePreprocess(interpolation="nearest")).for_inputs(NCHW).preprocess
    assert bound is not None
    for path, batch in zip(paths, batches, strict=True):
        np.testing.assert_array_equal(batch["x"], load_image(path, bound)[None])


CONV = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[N, 3, 8, 8] x) => (float[N, 4, 8, 8] y) <float[4, 3, 3, 3] w, float[4] b> {
  c = Conv <pads = [1, 1, 1, 1]> (x, w, b)
  y = Relu(c)
}
"""


def _conv() -> onnx.ModelProto:
    model = onnx.parser.parse_model(CONV)
    rng = np.random.default_rng(0)
    for name, shape in (("w", (4, 3, 3, 3)), ("b", (4,))):
        model.graph.initializer.append(
            onnx.numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)
        )
    return model


def test_image_folder_calibrates_a_conv_model_end_to_end(tmp_path: Path) -> None:
    from onnxq.api import prepare
    from onnxq.calibration.engine import calibrate
    from onnxq.calibration.observers import MinMaxObserver

    for i in range(5):
        _save(tmp_path / "cls" / f"{i}.png", seed=i, size=(9 + i, 11))
    source = load_calibration_data(tmp_path, preprocess=ImagePreprocess(mean=(0.5,), std=(0.25,)))
    model = _conv()
    result = calibrate(model, {"x": MinMaxObserver()}, source, progress=False)
    assert result.num_samples == 5
    bound = source.for_inputs(model_input_specs(model)).preprocess
    assert bound is not None
    images = np.stack([load_image(p, bound) for p in source.files])
    assert float(result.observers["x"].min_val) == float(images.min())
    assert float(result.observers["x"].max_val) == float(images.max())

    prepared = prepare(model, "x86")
    prepared.calibrate(source, progress=False)
    qmodel = prepared.convert()
    assert any(n.op_type == "QuantizeLinear" for n in qmodel.graph.node)
