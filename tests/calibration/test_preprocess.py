"""ImagePreprocess: validation, presets, JSON round trip, and agreement with its JSON Schema.

``schemas/preprocess.schema.json`` and ``ImagePreprocess.from_dict`` must agree: every example
below is accepted by both or rejected by both.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from onnxq.calibration.preprocess import PREPROCESS_PRESETS, ImagePreprocess, resolve_preprocess
from onnxq.errors import ConfigError


@pytest.fixture(scope="module")
def validator(json_schema: Callable[[str], Any]) -> jsonschema.Draft202012Validator:
    return json_schema("preprocess.schema.json")


VALID: list[tuple[str, dict[str, Any]]] = [
    ("minimal", {"version": 1}),
    ("imagenet", PREPROCESS_PRESETS["imagenet"].to_dict()),
    (
        "every-field",
        {
            "version": 1,
            "size": [32, 48],
            "resize": "letterbox",
            "shorter_side": None,
            "interpolation": "nearest",
            "mean": [0.5],
            "std": [0.25],
            "scale": 0.5,
            "channel_order": "BGR",
            "layout": "NHWC",
            "dtype": "int8",
            "pad_value": 0,
            "input_name": "images",
        },
    ),
    (
        "crop",
        {"version": 1, "size": [224, 224], "resize": "resize_shorter_then_center_crop", "shorter_side": 256},
    ),
    ("gray", {"version": 1, "channel_order": "L", "mean": [0.1], "std": [0.3]}),
]

INVALID: list[tuple[str, Any, str]] = [
    ("not-object", [1], "$: expected object, got list"),
    ("no-version", {"size": [2, 2]}, "$: missing required key 'version'"),
    ("version", {"version": 2}, "$.version: must be 1, got 2"),
    ("unknown-key", {"version": 1, "crop": 3}, "$.crop: unknown key"),
    ("size-one", {"version": 1, "size": [224]}, "$.size must be (height, width)"),
    ("size-zero", {"version": 1, "size": [0, 4]}, "$.size must be (height, width)"),
    ("size-string", {"version": 1, "size": "224"}, "$.size: expected array, got str"),
    ("size-float", {"version": 1, "size": [2.5, 4]}, "$.size must be (height, width)"),
    ("resize", {"version": 1, "resize": "stretch"}, "$.resize must be one of resize, resize_shorter"),
    ("interp", {"version": 1, "interpolation": "lanczos"}, "$.interpolation must be one of"),
    ("order", {"version": 1, "channel_order": "rgb"}, "$.channel_order must be one of RGB, BGR, L"),
    ("layout", {"version": 1, "layout": "CHW"}, "$.layout must be one of NCHW, NHWC"),
    ("dtype", {"version": 1, "dtype": "float64"}, "$.dtype must be one of float32, float16, uint8, int8"),
    ("mean-two", {"version": 1, "mean": [0.1, 0.2]}, "$.mean must be 1 or 3 finite numbers"),
    ("mean-str", {"version": 1, "mean": ["a"]}, "$.mean must be 1 or 3 finite numbers"),
    ("std-zero", {"version": 1, "std": [0.0]}, "$.std must be positive"),
    (
        "gray-three",
        {"version": 1, "channel_order": "L", "mean": [1, 2, 3]},
        "$.mean has 3 values for 1 channel",
    ),
    ("scale-neg", {"version": 1, "scale": -1}, "$.scale must be a positive finite number"),
    ("scale-bool", {"version": 1, "scale": True}, "$.scale must be a positive finite number"),
    ("pad", {"version": 1, "pad_value": 256}, "$.pad_value must be an integer 0..255"),
    ("name", {"version": 1, "input_name": ""}, "$.input_name must be a non-empty string"),
    ("side-no-crop", {"version": 1, "shorter_side": 256}, "$.shorter_side applies to resize"),
    (
        "side-zero",
        {"version": 1, "resize": "resize_shorter_then_center_crop", "shorter_side": 0},
        "$.shorter_side must be a positive integer",
    ),
]


@pytest.mark.parametrize(("name", "doc"), VALID, ids=[v[0] for v in VALID])
def test_valid_document_accepted_by_schema_and_from_dict(
    name: str, doc: dict[str, Any], validator: jsonschema.Draft202012Validator
) -> None:
    validator.validate(doc)
    spec = ImagePreprocess.from_dict(doc)
    validator.validate(spec.to_dict())
    assert ImagePreprocess.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(("name", "doc", "message"), INVALID, ids=[v[0] for v in INVALID])
def test_invalid_document_rejected_by_schema_and_from_dict_naming_json_path(
    name: str, doc: Any, message: str, validator: jsonschema.Draft202012Validator
) -> None:
    assert not validator.is_valid(doc), f"schema accepted invalid example {name!r}"
    with pytest.raises(ConfigError) as info:
        ImagePreprocess.from_dict(doc)
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_schema_describes_every_field_with_its_default(validator: jsonschema.Draft202012Validator) -> None:
    schema = validator.schema
    written = ImagePreprocess().to_dict()
    assert set(schema["properties"]) == set(written)
    defaults = {k: v["default"] for k, v in schema["properties"].items() if k != "version"}
    assert defaults == {k: v for k, v in written.items() if k != "version"}
    assert schema["properties"]["version"]["const"] == written["version"]


def test_shorter_side_smaller_than_the_crop_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"shorter_side 200 is smaller than the crop \(224, 224\)"):
        ImagePreprocess((224, 224), "resize_shorter_then_center_crop", 200)


def test_presets_and_the_default_crop_side() -> None:
    imagenet = PREPROCESS_PRESETS["imagenet"]
    assert imagenet.complete and imagenet.crop_shorter_side() == 256
    assert ImagePreprocess((224, 224), "resize_shorter_then_center_crop").crop_shorter_side() == 256
    assert all(p.complete for p in PREPROCESS_PRESETS.values())
    assert not ImagePreprocess().complete


def test_resolve_accepts_presets_files_and_values(tmp_path: Path) -> None:
    assert resolve_preprocess("imagenet") is PREPROCESS_PRESETS["imagenet"]
    assert resolve_preprocess(None) is None
    spec = ImagePreprocess(size=(8, 8), layout="NHWC")
    assert resolve_preprocess(spec) is spec
    path = tmp_path / "pre.json"
    path.write_text(json.dumps(spec.to_dict()))
    assert resolve_preprocess(path) == spec and resolve_preprocess(str(path)) == spec


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("imagenet21k", r"unknown image preprocessing 'imagenet21k': a preset \(imagenet, inception"),
        ("missing.json", r"missing\.json: cannot read preprocessing file \(does not exist\)"),
        (3, "image preprocessing must be a preset name, a JSON file or an ImagePreprocess"),
    ],
)
def test_resolve_errors_are_one_line(value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_preprocess(value)


def test_json_file_errors_name_the_file_and_path(tmp_path: Path) -> None:
    path = tmp_path / "pre.json"
    path.write_text('{"version": 1, "layout": "CHW"}')
    with pytest.raises(ConfigError, match=r"pre\.json: \$\.layout must be one of NCHW, NHWC, got 'CHW'"):
        ImagePreprocess.from_json_file(path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"pre\.json: not valid JSON"):
        ImagePreprocess.from_json_file(path)


def test_the_documented_example_is_valid(validator: jsonschema.Draft202012Validator) -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "calibration-data.md"
    example = doc.read_text(encoding="utf-8").split("```json\n", 1)[1].split("```", 1)[0]
    validator.validate(json.loads(example))
    assert ImagePreprocess.from_dict(json.loads(example)).complete
