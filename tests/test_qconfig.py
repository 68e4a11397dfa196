"""QSpec / QConfig / QConfigMapping: validation, presets, JSON round trip, and the JSON Schema.

The schema in ``schemas/qconfig.schema.json`` and ``QConfigMapping.from_dict`` must agree: every
example below is accepted by both or rejected by both.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onnxq.calibration.observers import observer_names
from onnxq.errors import ConfigError
from onnxq.qconfig import (
    PRESETS,
    PerBlock,
    PerChannel,
    PerTensor,
    QConfig,
    QConfigMapping,
    QSpec,
    get_default_qconfig,
    resolve_qconfig,
)
from onnxq.qparams import qrange

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "qconfig.schema.json"


@pytest.fixture(scope="module")
def validator(json_schema: Callable[[str], Any]) -> jsonschema.Draft202012Validator:
    return json_schema("qconfig.schema.json")


def _custom_qconfig() -> QConfig:
    return QConfig(
        QSpec(
            "int8",
            symmetric=True,
            observer="moving_average_minmax",
            observer_args={"averaging_constant": 0.1},
        ),
        QSpec("int8", symmetric=True, granularity=PerTensor(), observer="minmax"),
    )


# ---------------------------------------------------------------- validation of the dataclasses


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dtype": "int3"}, "QSpec.dtype must be one of"),
        ({"dtype": "float32"}, "QSpec.dtype must be one of"),
        ({"symmetric": 1}, "QSpec.symmetric must be a bool"),
        ({"granularity": "per_channel"}, "QSpec.granularity must be PerTensor, PerChannel or PerBlock"),
        ({"reduce_range": None}, "QSpec.reduce_range must be a bool"),
        ({"dynamic": 1}, "QSpec.dynamic must be a bool"),
        ({"observer": "kl_divergence"}, "QSpec.observer 'kl_divergence' is not registered"),
        ({"observer_args": [1, 2]}, "QSpec.observer_args must be a mapping"),
    ],
)
def test_qspec_rejects_invalid_field_with_its_name(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        QSpec(**kwargs)


def test_qspec_defaults_are_uint8_asymmetric_minmax() -> None:
    spec = QSpec()
    assert (spec.dtype, spec.symmetric, spec.per_channel, spec.reduce_range) == ("uint8", False, False, False)
    assert spec.observer == "minmax"
    assert spec.observer_args == {}


def test_qspec_is_frozen_and_copies_observer_args() -> None:
    args = {"bins": 256}
    spec = QSpec(observer="histogram", observer_args=args)
    args["bins"] = 9
    assert spec.observer_args == {"bins": 256}
    with pytest.raises(AttributeError):
        spec.dtype = "int8"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: QConfig(QSpec(), QSpec("int8", symmetric=True, dynamic=False, observer="minmax")), None),
        (lambda: QConfig(QSpec(), QSpec("uint8", observer="minmax")), None),
        (lambda: QConfig(None, QSpec("int4", symmetric=True, granularity=PerBlock(block_size=32))), None),
        (lambda: QConfig(QSpec(dynamic=True), QSpec("uint8", dynamic=True)), "weight cannot be dynamic"),
        (lambda: QSpec("int8", symmetric=True, dynamic=True), "QSpec.dynamic needs dtype uint8"),
        (lambda: QSpec(dynamic=True, reduce_range=True), "without reduce_range"),
        (
            lambda: QConfig(QSpec(dynamic=True), QSpec("int4", symmetric=True, granularity=PerBlock())),
            "dynamic activations needs 8-bit weights",
        ),
        (lambda: QSpec(granularity=PerChannel(), observer="histogram"), "keeps one range per tensor"),
        (lambda: QConfig(QSpec(granularity=PerBlock()), QSpec()), "activation cannot be per_block"),
        (lambda: PerBlock(block_size=1), "block_size must be an int from 2 to 2147483647, got 1"),
        (lambda: PerBlock(block_size=10**400), "block_size must be an int from 2 to 2147483647, got 1000"),
    ],
    ids=[
        "int8",
        "uint8-weight",
        "weight-only-int4",
        "dynamic-weight",
        "dynamic-int8",
        "dynamic-reduce",
        "dynamic-int4-weight",
        "histogram-per-channel",
        "block-activation",
        "block-of-one",
        "block-too-large",  # the fuzzer's find: a 400-digit block size reached np.full
    ],
)
def test_qconfig_refuses_what_no_runtime_executes(make, message: str | None) -> None:
    if message is None:
        assert make() is not None
        return
    with pytest.raises((ConfigError, ValueError), match=re.escape(message)):
        make()


def test_qconfig_rejects_non_qspec_members() -> None:
    with pytest.raises(ConfigError, match="must be QSpec"):
        QConfig({"dtype": "uint8"}, QSpec("int8", symmetric=True))  # type: ignore[arg-type]


def test_mapping_rejects_wrong_version_and_bad_regex() -> None:
    with pytest.raises(ConfigError, match=re.escape("version must be one of (1, 2), got 3")):
        QConfigMapping.from_dict({"version": 3})
    with pytest.raises(ConfigError, match=re.escape("invalid node name regex 'conv[0-")):
        QConfigMapping(node_name_regexes=(("conv[0-", None),))


def test_mapping_lookup_precedence_name_then_regex_then_op_type_then_global() -> None:
    x86, arm, custom = get_default_qconfig("x86"), get_default_qconfig("arm"), _custom_qconfig()
    mapping = (
        QConfigMapping()
        .set_global(x86)
        .set_op_type("Conv", arm)
        .set_node_name_regex(r"/head/.*", custom)
        .set_node_name_regex(r"/head/fc", None)
        .set_node_name("/head/conv0", None)
    )
    assert mapping.qconfig_for("/head/conv0", "Conv") is None  # exact name beats everything
    assert mapping.qconfig_for("/head/conv1", "Conv") == custom  # first matching regex
    assert mapping.qconfig_for("/head/fc", "Gemm") == custom  # the earlier regex wins
    assert mapping.qconfig_for("/stem/conv", "Conv") == arm  # op type
    assert mapping.qconfig_for("/stem/gemm", "Gemm") == x86  # global
    assert mapping.qconfig_for("x/head/conv", "Conv") == arm  # regexes match the full name
    assert QConfigMapping().qconfig_for("any", "Conv") is None  # default global: float


def test_mapping_builders_return_new_objects_and_leave_original_untouched() -> None:
    base = QConfigMapping()
    changed = base.set_op_type("Conv", get_default_qconfig("x86"))
    assert base.op_types == {}
    assert set(changed.op_types) == {"Conv"}


# ---------------------------------------------------------------- presets vs PyTorch


def test_x86_and_fbgemm_presets_are_per_channel_with_reduce_range() -> None:
    for name in ("x86", "fbgemm"):
        qc = get_default_qconfig(name)
        assert qc.activation == QSpec("uint8", reduce_range=True, observer="histogram")
        assert qc.weight == QSpec(
            "int8", symmetric=True, granularity=PerChannel(), observer="per_channel_minmax"
        )


def test_qnnpack_and_arm_presets_are_per_tensor_without_reduce_range() -> None:
    for name in ("qnnpack", "arm"):
        qc = get_default_qconfig(name)
        assert qc.activation == QSpec("uint8", observer="histogram")
        assert qc.weight == QSpec("int8", symmetric=True, observer="minmax")


def test_unknown_preset_is_rejected_with_known_names() -> None:
    with pytest.raises(ConfigError, match=re.escape("unknown qconfig backend 'tpu'")):
        get_default_qconfig("tpu")


_TORCH_OBSERVERS = {
    "HistogramObserver": "histogram",
    "MinMaxObserver": "minmax",
    "MovingAverageMinMaxObserver": "moving_average_minmax",
    "PerChannelMinMaxObserver": "per_channel_minmax",
}


@pytest.mark.filterwarnings("ignore:Please use quant_min and quant_max")
@pytest.mark.parametrize(
    ("ours", "theirs"), [("x86", "x86"), ("fbgemm", "fbgemm"), ("qnnpack", "qnnpack"), ("arm", "qnnpack")]
)
def test_preset_matches_pytorch_default_qconfig(ours: str, theirs: str) -> None:
    tq = pytest.importorskip("torch.ao.quantization")
    import torch

    ref = tq.get_default_qconfig(theirs)
    act, wt = ref.activation(), ref.weight()
    qc = get_default_qconfig(ours)
    dtypes = {torch.quint8: "uint8", torch.qint8: "int8"}
    symmetric = {torch.per_tensor_symmetric, torch.per_channel_symmetric}
    per_channel = {torch.per_channel_symmetric, torch.per_channel_affine}
    for spec, obs in ((qc.activation, act), (qc.weight, wt)):
        assert spec.dtype == dtypes[obs.dtype]
        assert spec.symmetric == (obs.qscheme in symmetric)
        assert spec.per_channel == (obs.qscheme in per_channel)
        assert spec.reduce_range == obs.reduce_range
        assert spec.observer == _TORCH_OBSERVERS[type(obs).__name__]
    # the activation integer range is PyTorch's (weights use the narrow [-127, 127], see numerics)
    assert qrange(qc.activation.dtype, qc.activation.symmetric, qc.activation.reduce_range) == (
        act.quant_min,
        act.quant_max,
    )


def test_resolve_qconfig_accepts_every_form(tmp_path: Path) -> None:
    x86 = get_default_qconfig("x86")
    assert resolve_qconfig(None).global_qconfig == x86
    assert resolve_qconfig("arm").global_qconfig == get_default_qconfig("arm")
    assert resolve_qconfig(x86) == QConfigMapping(global_qconfig=x86)
    mapping = QConfigMapping().set_op_type("Conv", x86)
    assert resolve_qconfig(mapping) is mapping
    path = tmp_path / "q.json"
    path.write_text(json.dumps(mapping.to_dict()), encoding="utf-8")
    assert resolve_qconfig(str(path)) == mapping
    with pytest.raises(ConfigError, match="qconfig must be a preset name"):
        resolve_qconfig(42)  # type: ignore[arg-type]


# ---------------------------------------------------------------- JSON round trip


def _rich_mapping() -> QConfigMapping:
    return (
        QConfigMapping(global_qconfig=get_default_qconfig("x86"))
        .set_op_type("Softmax", None)
        .set_op_type("MatMul", _custom_qconfig())
        .set_node_name("/fc/Gemm", get_default_qconfig("qnnpack"))
        .set_node_name_regex(r"/block\d+/.*", None)
    )


def test_mapping_round_trips_through_json_text() -> None:
    mapping = _rich_mapping()
    text = json.dumps(mapping.to_dict())
    again = QConfigMapping.from_dict(json.loads(text))
    assert again == mapping
    assert again.to_dict() == mapping.to_dict()


def test_mapping_round_trips_through_json_file(tmp_path: Path) -> None:
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(_rich_mapping().to_dict(), indent=2), encoding="utf-8")
    assert QConfigMapping.from_json_file(path) == _rich_mapping()


def test_from_dict_accepts_preset_names_and_defaults() -> None:
    mapping = QConfigMapping.from_dict(
        {
            "version": 1,
            "global": "arm",
            "op_types": {"Conv": {"activation": {}, "weight": {"dtype": "int8", "symmetric": True}}},
        }
    )
    assert mapping.global_qconfig == get_default_qconfig("arm")
    assert mapping.op_types["Conv"] == QConfig(QSpec(), QSpec("int8", symmetric=True))
    assert mapping.node_names == {}
    assert mapping.node_name_regexes == ()


def test_from_json_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigError, match=re.escape(f"{missing}: cannot read qconfig file")):
        QConfigMapping.from_json_file(missing)
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1,\n "global": }', encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(f"{bad}: not valid JSON") + ".*line 2"):
        QConfigMapping.from_json_file(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"version": 1, "global": "tpu"}', encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(f"{wrong}: $.global: unknown preset 'tpu'")):
        QConfigMapping.from_json_file(wrong)


# ---------------------------------------------------------------- schema and from_dict agree

_W = {"dtype": "int8", "symmetric": True}
_QC = {"activation": {"dtype": "uint8", "reduce_range": True, "observer": "histogram"}, "weight": _W}

VALID: list[tuple[str, dict[str, Any]]] = [
    ("minimal", {"version": 1}),
    ("global-preset", {"version": 1, "global": "x86"}),
    ("global-null", {"version": 1, "global": None}),
    ("explicit", {"version": 1, "global": _QC}),
    ("op-types", {"version": 1, "global": "fbgemm", "op_types": {"Softmax": None, "Conv": "qnnpack"}}),
    ("node-names", {"version": 1, "node_names": {"/fc/Gemm": _QC, "/stem/Conv": None}}),
    ("regex", {"version": 1, "node_name_regex": [{"pattern": "/head/.*", "qconfig": None}]}),
    (
        "observer-args",
        {
            "version": 1,
            "global": {
                "activation": {"observer": "histogram", "observer_args": {"bins": 512}},
                "weight": {**_W, "per_channel": True, "observer": "per_channel_minmax"},
            },
        },
    ),
    (
        "int8-activations",
        {"version": 1, "global": {"activation": {"dtype": "int8", "symmetric": True}, "weight": _W}},
    ),
    ("v2-minimal", {"version": 2, "global": "x86"}),
    (
        "v2-weight-only-int4-blocks",
        {
            "version": 2,
            "global": {
                "activation": None,
                "weight": {
                    "dtype": "int4",
                    "symmetric": True,
                    "granularity": {"type": "per_block", "axis": None, "block_size": 32},
                },
            },
        },
    ),
    (
        "v2-int16-activations-uint8-weights",
        {
            "version": 2,
            "op_types": {
                "Conv": {
                    "activation": {"dtype": "int16", "symmetric": True},
                    "weight": {
                        "dtype": "uint8",
                        "granularity": "per_channel",
                        "observer": "per_channel_minmax",
                    },
                }
            },
        },
    ),
    (
        "v2-dynamic",
        {
            "version": 2,
            "global": {
                "activation": {"dynamic": True},
                "weight": {
                    "dtype": "int8",
                    "symmetric": True,
                    "granularity": {"type": "per_channel", "axis": 1},
                },
            },
        },
    ),
]

# (name, document, the JSON path the from_dict error must start with)
INVALID: list[tuple[str, Any, str]] = [
    ("not-object", [1], "$: expected object, got array"),
    ("no-version", {"global": "x86"}, "$: missing required key 'version'"),
    ("version-string", {"version": "1"}, "$.version: expected integer, got string"),
    ("version-3", {"version": 3}, "$: QConfigMapping.version must be one of"),
    ("unknown-top-key", {"version": 1, "globals": "x86"}, "$.globals: unknown key"),
    ("unknown-preset", {"version": 1, "global": "tpu"}, "$.global: unknown preset 'tpu'"),
    ("global-number", {"version": 1, "global": 3}, "$.global: expected object, got integer"),
    ("op-types-array", {"version": 1, "op_types": ["Conv"]}, "$.op_types: expected object, got array"),
    (
        "qconfig-missing-weight",
        {"version": 1, "op_types": {"Conv": {"activation": {}}}},
        "$.op_types.Conv: missing required key 'weight'",
    ),
    ("qconfig-unknown-key", {"version": 1, "global": {**_QC, "bias": {}}}, "$.global.bias: unknown key"),
    (
        "qspec-unknown-key",
        {"version": 1, "global": {"activation": {"bits": 8}, "weight": _W}},
        "$.global.activation.bits: unknown key",
    ),
    (
        "qspec-wrong-dtype",
        {"version": 1, "global": {"activation": {"dtype": "int3"}, "weight": _W}},
        "$.global.activation: QSpec.dtype must be one of",
    ),
    (
        "qspec-bool-as-int",
        {"version": 1, "node_names": {"n": {"activation": {"symmetric": 1}, "weight": _W}}},
        "$.node_names.n.activation.symmetric: expected bool, got integer",
    ),
    (
        "qspec-dtype-number",
        {"version": 1, "global": {"activation": {"dtype": 8}, "weight": _W}},
        "$.global.activation.dtype: expected str, got integer",
    ),
    (
        "unknown-observer",
        {"version": 1, "global": {"activation": {"observer": "kl"}, "weight": _W}},
        "$.global.activation: QSpec.observer 'kl' is not registered",
    ),
    (
        "observer-args-list",
        {"version": 1, "global": {"activation": {"observer_args": []}, "weight": _W}},
        "$.global.activation.observer_args: expected dict, got array",
    ),
    (
        "weight-uint8",
        {"version": 1, "global": {"activation": {}, "weight": {"dtype": "uint8"}}},
        "$.global: QConfig.weight must be int8 symmetric",
    ),
    (
        "weight-asymmetric",
        {"version": 1, "global": {"activation": {}, "weight": {"dtype": "int8"}}},
        "$.global: QConfig.weight must be int8 symmetric",
    ),
    (
        "regex-not-array",
        {"version": 1, "node_name_regex": {"a": None}},
        "$.node_name_regex: expected array, got object",
    ),
    (
        "regex-missing-qconfig",
        {"version": 1, "node_name_regex": [{"pattern": "a"}]},
        "$.node_name_regex[0]: missing required key 'qconfig'",
    ),
    (
        "regex-pattern-number",
        {"version": 1, "node_name_regex": [{"pattern": 5, "qconfig": None}]},
        "$.node_name_regex[0].pattern: expected string, got integer",
    ),
    (
        "regex-invalid",
        {"version": 1, "node_name_regex": [{"pattern": "conv[", "qconfig": None}]},
        "$: invalid node name regex 'conv['",
    ),
    (
        "v2-per-channel-key",
        {"version": 2, "global": {"activation": {"per_channel": False}, "weight": {}}},
        "$.global.activation.per_channel: unknown key",
    ),
    (
        "v2-granularity-type",
        {"version": 2, "global": {"activation": {}, "weight": {"granularity": {"type": "per_row"}}}},
        "$.global.weight.granularity: granularity type must be one of",
    ),
    (
        "v2-granularity-key",
        {
            "version": 2,
            "global": {"activation": {}, "weight": {"granularity": {"type": "per_tensor", "axis": 0}}},
        },
        "$.global.weight.granularity: granularity per_tensor: unknown key 'axis'",
    ),
    (
        "v2-block-size",
        {
            "version": 2,
            "global": {"activation": None, "weight": {"granularity": {"type": "per_block", "block_size": 1}}},
        },
        "$.global.weight.granularity: PerBlock.block_size must be an int from 2 to 2147483647, got 1",
    ),
    (
        "v2-dynamic-int8",
        {"version": 2, "global": {"activation": {"dtype": "int8", "dynamic": True}, "weight": {}}},
        "$.global.activation: QSpec.dynamic needs dtype uint8",
    ),
    (
        "v2-dynamic-weight",
        {"version": 2, "global": {"activation": {}, "weight": {"dynamic": True}}},
        "$.global: QConfig.weight cannot be dynamic",
    ),
    (
        "v1-null-activation",
        {"version": 1, "global": {"activation": None, "weight": _W}},
        "$.global.activation: expected object, got null",
    ),
    (
        "regex-deep-error",
        {
            "version": 1,
            "node_name_regex": [{"pattern": "a", "qconfig": {"activation": {}, "weight": {**_W, "x": 1}}}],
        },
        "$.node_name_regex[0].qconfig.weight.x: unknown key",
    ),
]


@pytest.mark.parametrize(("name", "doc"), VALID, ids=[v[0] for v in VALID])
def test_valid_document_accepted_by_schema_and_from_dict(
    name: str, doc: dict[str, Any], validator: jsonschema.Draft202012Validator
) -> None:
    validator.validate(doc)
    mapping = QConfigMapping.from_dict(copy.deepcopy(doc))
    # and what we write back is valid again, and stable
    validator.validate(mapping.to_dict())
    assert QConfigMapping.from_dict(mapping.to_dict()) == mapping


@pytest.mark.parametrize(("name", "doc", "path_msg"), INVALID, ids=[v[0] for v in INVALID])
def test_invalid_document_rejected_by_schema_and_from_dict_naming_json_path(
    name: str, doc: Any, path_msg: str, validator: jsonschema.Draft202012Validator
) -> None:
    assert not validator.is_valid(doc), f"schema accepted invalid example {name!r}"
    with pytest.raises(ConfigError) as info:
        QConfigMapping.from_dict(copy.deepcopy(doc))
    message = str(info.value)
    assert message.startswith(path_msg), message
    assert "\n" not in message


def test_schema_observer_enum_matches_registered_observers() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert sorted(schema["$defs"]["qspec"]["properties"]["observer"]["enum"]) == sorted(observer_names())


def test_schema_describes_every_dataclass_field() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert set(schema["$defs"]["qspec"]["properties"]) == set(QSpec().to_dict())
    assert schema["$defs"]["preset"]["enum"] == list(PRESETS)
    assert set(schema["properties"]) == set(QConfigMapping().to_dict())
    qspec_defaults = {k: v["default"] for k, v in schema["$defs"]["qspec"]["properties"].items()}
    assert qspec_defaults == QSpec().to_dict()


_specs = st.builds(
    QSpec,
    dtype=st.sampled_from(["uint8", "int8"]),
    symmetric=st.booleans(),
    granularity=st.just(PerTensor()),
    reduce_range=st.booleans(),
    observer=st.sampled_from(["minmax", "histogram", "moving_average_minmax", "per_channel_minmax"]),
)
_weights = st.builds(
    QSpec,
    dtype=st.sampled_from(["int4", "uint4", "int8", "uint8", "int16"]),
    symmetric=st.booleans(),
    granularity=st.sampled_from([PerTensor(), PerChannel(), PerChannel(0), PerBlock(block_size=32)]),
    observer=st.sampled_from(["minmax", "per_channel_minmax"]),
)
_qconfigs = st.one_of(
    st.none(),
    st.sampled_from(PRESETS).map(get_default_qconfig),
    st.builds(QConfig, _specs, _weights),
    st.builds(QConfig, st.none(), _weights),
)
_names = st.text(alphabet="abcXYZ/_.0123456789", min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    glob=_qconfigs,
    op_types=st.dictionaries(
        st.sampled_from(["Conv", "Gemm", "MatMul", "Add", "Softmax"]), _qconfigs, max_size=3
    ),
    node_names=st.dictionaries(_names, _qconfigs, max_size=3),
    regexes=st.lists(st.tuples(_names.map(re.escape), _qconfigs), max_size=3),
)
def test_any_mapping_round_trips_and_validates_against_schema(
    glob: QConfig | None,
    op_types: dict[str, QConfig | None],
    node_names: dict[str, QConfig | None],
    regexes: list[tuple[str, QConfig | None]],
) -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    mapping = QConfigMapping(glob, op_types, node_names, tuple(regexes))
    doc = json.loads(json.dumps(mapping.to_dict()))
    jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
    assert QConfigMapping.from_dict(doc) == mapping


# ---------------------------------------------------------------- CLI overrides


def test_with_overrides_switches_activation_dtype_and_weight_granularity_everywhere() -> None:
    mapping = _rich_mapping()
    changed = mapping.with_overrides(activation_dtype="int8", per_channel=False)
    qcs = [changed.global_qconfig, *changed.op_types.values(), *changed.node_names.values()]
    qcs += [qc for _, qc in changed.node_name_regexes]
    assert changed.op_types["Softmax"] is None and changed.node_name_regexes[0][1] is None
    live = [qc for qc in qcs if qc is not None]
    assert len(live) == 3
    for qc in live:
        assert (qc.activation.dtype, qc.activation.symmetric) == ("int8", True)
        assert (qc.weight.per_channel, qc.weight.observer) == (False, "minmax")
    # what the override does not touch is kept
    assert changed.global_qconfig.activation.reduce_range is True
    assert changed.global_qconfig.activation.observer == "histogram"
    assert changed.op_types["MatMul"].activation.observer_args == {"averaging_constant": 0.1}


def test_with_overrides_to_per_channel_and_uint8() -> None:
    changed = QConfigMapping(global_qconfig=get_default_qconfig("qnnpack")).with_overrides(
        activation_dtype="uint8", per_channel=True
    )
    assert changed.global_qconfig.weight == QSpec(
        "int8", symmetric=True, granularity=PerChannel(), observer="per_channel_minmax"
    )
    assert changed.global_qconfig.activation == get_default_qconfig("qnnpack").activation


def test_with_overrides_keeps_each_configs_fixed_range_policy() -> None:
    qc = replace(get_default_qconfig("x86"), fixed_ranges="when_filled")
    changed = QConfigMapping(global_qconfig=qc, op_types={"Sigmoid": qc}).with_overrides(per_channel=False)
    assert changed.global_qconfig.fixed_ranges == "when_filled"
    assert changed.op_types["Sigmoid"].fixed_ranges == "when_filled"
    assert not changed.global_qconfig.weight.per_channel


def test_with_overrides_without_arguments_is_identity_and_bad_dtype_rejected() -> None:
    mapping = _rich_mapping()
    assert mapping.with_overrides() == mapping
    with pytest.raises(ConfigError, match="activation dtype must be one of"):
        mapping.with_overrides(activation_dtype="int3")


def test_readme_json_example_is_valid_and_matches_the_python_example(
    validator: jsonschema.Draft202012Validator,
) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```json\n(.*?)```", readme, flags=re.S)
    doc = json.loads(block)
    validator.validate(doc)
    expected = (
        QConfigMapping()
        .set_global(get_default_qconfig("x86"))
        .set_op_type("Softmax", None)
        .set_node_name_regex(r"/head/.*", get_default_qconfig("arm"))
    )
    assert QConfigMapping.from_dict(doc) == expected


def test_qconfig_rejects_per_channel_activations() -> None:
    with pytest.raises(ConfigError, match="activation cannot be per_channel"):
        QConfig(
            QSpec("uint8", granularity=PerChannel(), observer="per_channel_minmax"),
            QSpec("int8", symmetric=True),
        )


@pytest.mark.parametrize(
    ("observer", "args", "message"),
    [
        ("histogram", {"bins": 100000}, r"bins must be an int in \[2, 16384\], got 100000"),
        ("histogram", {"bins": 10**9}, r"bins must be an int in \[2, 16384\]"),
        (
            "histogram",
            {"bin": 64},
            r"observer 'histogram' has no argument 'bin' \(it takes bins\)",
        ),
        ("minmax", {"foo": 1}, r"observer 'minmax' has no argument 'foo' \(it takes no arguments\)"),
        ("minmax", {"axis": 1}, "has no argument 'axis'"),
        (
            "moving_average_minmax",
            {"averaging_constant": 2.0},
            r"averaging_constant must be a number in \(0, 1\]",
        ),
        ("moving_average_minmax", {"averaging_constant": "0.1"}, "averaging_constant must be a number"),
    ],
)
def test_observer_args_are_checked_when_the_spec_is_made(
    observer: str, args: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        QSpec(observer=observer, observer_args=args)


def test_observer_args_errors_in_a_file_are_one_line_naming_the_file(tmp_path: Path) -> None:
    doc = QConfigMapping(global_qconfig=get_default_qconfig("x86")).to_dict()
    doc["global"]["activation"]["observer_args"] = {"bins": 100000}
    path = tmp_path / "q.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=r"bins must be an int in \[2, 16384\]") as info:
        QConfigMapping.from_json_file(path)
    assert "\n" not in str(info.value)
    text = json.dumps(doc).replace('"observer_args": {', '"observer_args": {"bins": 8, "bins": 9, ', 1)
    path.write_text(text)
    with pytest.raises(ConfigError, match="key 'bins' appears twice in one object"):
        QConfigMapping.from_json_file(path)


@pytest.mark.parametrize("pattern", ["(" * 5000 + ")" * 5000, "a{99999999999}", "[z-a]", "(?P<x"])
def test_node_name_regexes_that_do_not_compile_are_config_errors(pattern: str) -> None:
    qc = get_default_qconfig("x86")
    with pytest.raises(ConfigError, match="invalid node name regex"):
        QConfigMapping(node_name_regexes=((pattern, qc),))
