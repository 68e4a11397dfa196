"""One image: decoded, checked, resized and normalised; exact against numpy where the maths is exact."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from onnxq.calibration.imaging import image_shape, load_image, normalize, open_image
from onnxq.calibration.preprocess import ImagePreprocess
from onnxq.errors import CalibrationDataError

Image = pytest.importorskip("PIL.Image")


def _pixels(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _png(path: Path, pixels: np.ndarray, mode: str | None = None) -> Path:
    img = Image.fromarray(pixels)
    (img.convert(mode) if mode else img).save(path)
    return path


def _spec(**kw: object) -> ImagePreprocess:
    base: dict[str, object] = {
        "size": (4, 6),
        "channel_order": "RGB",
        "layout": "NCHW",
        "dtype": "float32",
        "scale": 1 / 255,
    }
    return ImagePreprocess(**{**base, **kw})  # type: ignore[arg-type]


def _reference(pixels: np.ndarray, spec: ImagePreprocess) -> np.ndarray:
    x = pixels.astype(np.float32) * np.float32(spec.scale)
    x = (x - np.array(spec.mean, np.float32)) / np.array(spec.std, np.float32)
    if spec.channel_order == "BGR":
        x = x[..., ::-1]
    return np.ascontiguousarray(x.transpose(2, 0, 1) if spec.layout == "NCHW" else x)


@pytest.mark.parametrize("order", ["RGB", "BGR"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_exact_size_png_is_normalised_exactly(tmp_path: Path, order: str, layout: str) -> None:
    pixels = _pixels(4, 6)
    spec = _spec(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), channel_order=order, layout=layout)
    got = load_image(_png(tmp_path / "a.png", pixels), spec)
    assert got.shape == image_shape(spec) and got.dtype == np.float32
    np.testing.assert_array_equal(got, _reference(pixels, spec))


def test_nearest_downscale_by_two_takes_every_other_pixel(tmp_path: Path) -> None:
    pixels = _pixels(8, 12, seed=1)
    spec = _spec(interpolation="nearest", layout="NHWC")
    got = load_image(_png(tmp_path / "a.png", pixels), spec)
    np.testing.assert_array_equal(got, _reference(pixels[1::2, 1::2], spec))


def test_shorter_side_then_centre_crop_is_a_slice_when_no_resize_is_needed(tmp_path: Path) -> None:
    pixels = _pixels(8, 10, seed=2)  # height 8 is the shorter side
    spec = _spec(size=(6, 6), resize="resize_shorter_then_center_crop", shorter_side=8)
    got = load_image(_png(tmp_path / "a.png", pixels), spec)
    np.testing.assert_array_equal(got, _reference(pixels[1:7, 2:8], spec))


def test_letterbox_pads_around_the_scaled_image(tmp_path: Path) -> None:
    pixels = _pixels(4, 8, seed=3)  # fits 8x8 at scale 1: two rows of padding above and below
    spec = _spec(size=(8, 8), resize="letterbox", pad_value=7, layout="NHWC", scale=1.0, dtype="uint8")
    got = load_image(_png(tmp_path / "a.png", pixels), spec)
    want = np.full((8, 8, 3), 7, np.uint8)
    want[2:6] = pixels
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("resize", ["resize", "resize_shorter_then_center_crop", "letterbox"])
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
def test_any_geometry_gives_the_declared_shape(tmp_path: Path, resize: str, interpolation: str) -> None:
    path = _png(tmp_path / "a.png", _pixels(37, 23))
    spec = _spec(size=(16, 12), resize=resize, interpolation=interpolation, layout="NHWC", dtype="float16")
    got = load_image(path, spec)
    assert got.shape == (16, 12, 3) and got.dtype == np.float16


def test_jpeg_is_decoded_like_pillow_decodes_it(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    Image.fromarray(_pixels(4, 6)).save(path, quality=90)
    decoded = np.asarray(Image.open(path).convert("RGB"))
    spec = _spec()
    np.testing.assert_array_equal(load_image(path, spec), _reference(decoded, spec))


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA"])
def test_other_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    pixels = _pixels(4, 6)
    path = _png(tmp_path / "a.png", pixels, mode)
    want = np.asarray(Image.open(path).convert("RGB"))
    spec = _spec()
    np.testing.assert_array_equal(load_image(path, spec), _reference(want, spec))


def test_grayscale_models_get_one_channel(tmp_path: Path) -> None:
    path = _png(tmp_path / "a.png", _pixels(4, 6))
    spec = _spec(channel_order="L", mean=(0.5,), std=(0.5,))
    luma = np.asarray(Image.open(path).convert("L"))[..., None]
    got = load_image(path, spec)
    assert got.shape == (1, 4, 6)
    np.testing.assert_array_equal(got, _reference(luma, spec))


def test_integer_dtypes_round_half_to_even_and_clip() -> None:
    pixels = np.array([[[0, 1, 2], [3, 128, 255]]], np.uint8)
    spec = _spec(size=(1, 2), scale=1.0, mean=(128.0,), std=(2.0,), dtype="int8", layout="NHWC")
    got = normalize(pixels, spec)
    assert got.dtype == np.int8
    # (p - 128) / 2: -64, -63.5, -63, -62.5, 0, 63.5 -> rounded half to even
    np.testing.assert_array_equal(got, [[[-64, -64, -63], [-62, 0, 64]]])
    big = normalize(pixels, _spec(size=(1, 2), scale=4.0, dtype="uint8", layout="NHWC"))
    assert big.max() == 255 and big.min() == 0


def test_truncated_and_corrupt_images_are_one_line(tmp_path: Path) -> None:
    for suffix in ("png", "jpg"):
        path = tmp_path / f"cut.{suffix}"
        Image.fromarray(_pixels(64, 64)).save(path)
        path.write_bytes(path.read_bytes()[:300])
        with pytest.raises(
            CalibrationDataError, match=rf"cut\.{suffix}: cannot (decode|read) the image"
        ) as info:
            load_image(path, _spec())
        assert "\n" not in str(info.value)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(CalibrationDataError, match=r"text\.png: not a JPEG or PNG image"):
        open_image(tmp_path / "text.png")


def test_other_formats_are_refused_whatever_the_name(tmp_path: Path) -> None:
    path = tmp_path / "really_a_bmp.png"
    Image.fromarray(_pixels(4, 6)).save(path, format="BMP")
    with pytest.raises(CalibrationDataError, match="not a JPEG or PNG image"):
        open_image(path)


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    path = _png(tmp_path / "big.png", np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(
        CalibrationDataError, match=r"big\.png: 100x100 pixels, more than the decompression-bomb"
    ):
        open_image(path, max_pixels=5000)
    open_image(path, max_pixels=10_000).close()


def test_decompression_bomb_limit_defaults_to_pillows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _png(tmp_path / "big.png", np.zeros((100, 100, 3), np.uint8))
    for limit in (6000, 2000):  # Pillow itself refuses images over twice its limit
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        with pytest.raises(CalibrationDataError, match=r"big\.png: .*more than the decompression-bomb limit"):
            load_image(path, _spec())


def test_sixteen_bit_images_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 40000, np.uint16)).save(path)
    with pytest.raises(CalibrationDataError, match=r"deep\.png: image mode I;16 is not 8 bits a channel"):
        open_image(path)


def test_a_directory_or_missing_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d.png").mkdir()
    with pytest.raises(CalibrationDataError, match="is not a regular file"):
        open_image(tmp_path / "d.png")
    with pytest.raises(CalibrationDataError, match="does not exist"):
        open_image(tmp_path / "none.png")


def test_missing_pillow_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _png(tmp_path / "a.png", _pixels(4, 6))
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(CalibrationDataError, match=r'needs Pillow: pip install "onnxq\[images\]"'):
        load_image(path, _spec())
