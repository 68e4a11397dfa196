"""Shared test fixtures: build small models, export torch modules, run and compare under onnxruntime.

Fixtures (request them by name in a test's arguments):

``model_from_text(text) -> onnx.ModelProto``
    Parse ONNX text syntax (``onnx.parser``) and check the model, e.g.::

        model = model_from_text('''
            <ir_version: 8, opset_import: ["" : 13]>
            g (float[1, 4] x) => (float[1, 4] y) { y = Relu(x) }
        ''')

``export_torch(module, example_inputs, exporter=..., opset=..., **options) -> onnx.ModelProto``
    Export ``module`` (put in eval mode) with ``exporter="dynamo"`` (``torch.onnx.export(...,
    dynamo=True)``, opset >= 18) or ``"torchscript"`` (``dynamo=False``). ``options`` go to
    ``torch.onnx.export`` (e.g. ``training=torch.onnx.TrainingMode.TRAINING``,
    ``do_constant_folding=False``, ``optimize=False`` for dynamo). Skips the test without torch.

``torch_exporter`` (parametrised)
    One ``ExporterConfig(exporter, opset)`` per entry of :data:`EXPORTERS` — both exporters at two
    opsets each. A test taking it runs four times::

        def test_x(export_torch, torch_exporter):
            model = export_torch(MyNet(), (torch.randn(2, 3, 8, 8),), *torch_exporter)

``run_ort(model, feeds, optimize=True) -> list[np.ndarray]``
    Run a ``ModelProto`` / ``onnx_ir.Model`` / path on the CPU provider, graph optimisations on
    (``ORT_ENABLE_ALL``) or off (``ORT_DISABLE_ALL``). A quantized model gives its exact integer
    results: on CPUs where onnxruntime's u8 x s8 kernels saturate (x86 with AVX2, no VNNI) its
    uint8 twin runs (:func:`onnxq.passes.uint8_twin.exact_on_onnxruntime`), so that what
    the tests measure is the quantization, not that CPU's onnxruntime.

``random_feeds(model, seed=0, dims=None) -> dict[str, np.ndarray]``
    Random inputs for every graph input that is not an initializer; symbolic dimensions become
    ``dims.get(name, 2)``.

``assert_same_outputs(before, after, feeds=None, rtol=1e-4, atol=1e-4, optimize=True)``
    Run both models on the same inputs (random if ``feeds`` is None) and assert every output is
    close, with ``atol`` scaled by the largest reference magnitude.

``op_counts(model) -> dict[str, int]``
    ``{op_type: count}`` over the main graph of a ``ModelProto`` or ``onnx_ir.Model``.

``make_plan(text, mapping) -> (onnx_ir.Model, QuantPlan)``
    The quantization plan of an ONNX-text model (fusion groups of its weighted ops included).

``digits_work -> Path``
    A temporary directory holding the bundled digits CNN (``model.onnx``: Conv layers and a Gemm
    head) and its calibration data (``calib.npz``).

``onnxq_cli(*argv) -> (exit status, stdout, stderr)``
    Run ``onnxq`` in-process (arguments are turned into strings).

``json_schema(name) -> jsonschema.Draft202012Validator`` (session scope)
    The JSON Schema ``schemas/<name>``, itself checked, as a validator (with format checks).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnx
import onnx.parser
import onnx_ir as ir
import pytest

from onnxq.io import to_proto
from onnxq.passes.uint8_twin import exact_on_onnxruntime
from onnxq.runtime import make_session

_NP_TYPES = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.INT8: np.int8,
    onnx.TensorProto.UINT8: np.uint8,
    onnx.TensorProto.BOOL: np.bool_,
}


class ExporterConfig(NamedTuple):
    """Which torch exporter to use and at which opset."""

    exporter: str
    opset: int


#: Both torch exporters, two opsets each (the dynamo exporter supports opset >= 18 only).
EXPORTERS: tuple[ExporterConfig, ...] = (
    ExporterConfig("torchscript", 13),
    ExporterConfig("torchscript", 17),
    ExporterConfig("dynamo", 18),
    ExporterConfig("dynamo", 20),
)


ModelLike = onnx.ModelProto | ir.Model | str | os.PathLike


def _as_proto(model: ModelLike) -> onnx.ModelProto:
    if isinstance(model, ir.Model):
        return to_proto(model)
    if isinstance(model, (str, os.PathLike)):
        return onnx.load(str(model))
    return model


def build_model_from_text(text: str) -> onnx.ModelProto:
    """Parse ONNX text syntax into a checked ``ModelProto``."""
    model = onnx.parser.parse_model(text)
    onnx.checker.check_model(model)
    return model


def export_torch_module(
    module: Any,
    example_inputs: Sequence[Any],
    exporter: str = "torchscript",
    opset: int = 17,
    **options: Any,
) -> onnx.ModelProto:
    """Export a torch module to a ``ModelProto`` with the chosen exporter (see module docstring)."""
    torch = pytest.importorskip("torch")
    if exporter not in ("dynamo", "torchscript"):
        raise ValueError(f"exporter must be 'dynamo' or 'torchscript', got {exporter!r}")
    module = module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            program = torch.onnx.export(
                module, tuple(example_inputs), dynamo=True, opset_version=opset, verbose=False, **options
            )
            return program.model_proto
        buffer = io.BytesIO()
        torch.onnx.export(module, tuple(example_inputs), buffer, dynamo=False, opset_version=opset, **options)
    return onnx.load_from_string(buffer.getvalue())


def run_model(model: ModelLike, feeds: Mapping[str, np.ndarray], optimize: bool = True) -> list[np.ndarray]:
    """Run ``model`` on the CPU provider and return all outputs: its exact integer results, so the
    uint8 twin where onnxruntime's u8 x s8 kernels saturate on this CPU."""
    proto = exact_on_onnxruntime(_as_proto(model))
    return make_session(proto, optimize=optimize).run(None, dict(feeds))


def make_random_feeds(
    model: ModelLike, seed: int = 0, dims: Mapping[str, int] | None = None
) -> dict[str, np.ndarray]:
    """Random inputs (standard normal for floats, 0..9 for integers) for the model's real inputs."""
    proto = _as_proto(model)
    rng = np.random.default_rng(seed)
    initializers = {t.name for t in proto.graph.initializer}
    feeds: dict[str, np.ndarray] = {}
    for value in proto.graph.input:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        shape = [
            d.dim_value if d.HasField("dim_value") else (dims or {}).get(d.dim_param, 2)
            for d in tensor_type.shape.dim
        ]
        dtype = _NP_TYPES[tensor_type.elem_type]
        if np.issubdtype(dtype, np.floating):
            feeds[value.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[value.name] = rng.integers(0, 10, size=shape).astype(dtype)
    return feeds


def assert_outputs_close(
    before: ModelLike,
    after: ModelLike,
    feeds: Mapping[str, np.ndarray] | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-4,
    optimize: bool = True,
) -> None:
    """Assert ``after`` computes what ``before`` does on ``feeds`` (random when None)."""
    feeds = make_random_feeds(before) if feeds is None else feeds
    expected = run_model(before, feeds, optimize)
    got = run_model(after, feeds, optimize)
    assert len(expected) == len(got), f"{len(expected)} outputs before, {len(got)} after"
    for i, (e, g) in enumerate(zip(expected, got, strict=True)):
        assert e.shape == g.shape, f"output {i}: shape {e.shape} before, {g.shape} after"
        scale = max(1.0, float(np.max(np.abs(e)))) if e.size else 1.0
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol * scale, err_msg=f"output {i}")


def count_op_types(model: ModelLike) -> dict[str, int]:
    """``{op_type: count}`` over the main graph."""
    counts: dict[str, int] = {}
    for node in _as_proto(model).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


@pytest.fixture
def model_from_text() -> Callable[[str], onnx.ModelProto]:
    return build_model_from_text


@pytest.fixture
def export_torch() -> Callable[..., onnx.ModelProto]:
    return export_torch_module


@pytest.fixture(params=EXPORTERS, ids=[f"{e.exporter}-opset{e.opset}" for e in EXPORTERS])
def torch_exporter(request: pytest.FixtureRequest) -> ExporterConfig:
    return request.param


@pytest.fixture
def run_ort() -> Callable[..., list[np.ndarray]]:
    return run_model


@pytest.fixture
def random_feeds() -> Callable[..., dict[str, np.ndarray]]:
    return make_random_feeds


@pytest.fixture
def assert_same_outputs() -> Callable[..., None]:
    return assert_outputs_close


@pytest.fixture
def op_counts() -> Callable[[ModelLike], dict[str, int]]:
    return count_op_types


@pytest.fixture
def make_plan() -> Callable[..., tuple[ir.Model, Any]]:
    from onnxq.io import load_model
    from onnxq.planning.fusion import find_fusion_groups
    from onnxq.planning.plan import build_plan

    def make(text: str, mapping: Any, **options: Any) -> tuple[ir.Model, Any]:
        model = load_model(build_model_from_text(text))
        return model, build_plan(model, mapping, find_fusion_groups(model.graph), **options)

    return make


@pytest.fixture
def digits_work(tmp_path: Path) -> Path:
    from onnxq.demo import asset_path

    shutil.copy(asset_path("digits_cnn.onnx"), tmp_path / "model.onnx")
    shutil.copy(asset_path("digits_calib.npz"), tmp_path / "calib.npz")
    return tmp_path


@pytest.fixture
def onnxq_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    from onnxq.cli import main

    def run(*argv: object) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


def load_schema_validator(name: str) -> Any:
    """The checked JSON Schema ``schemas/<name>`` as a Draft 2020-12 validator."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@pytest.fixture(scope="session")
def json_schema() -> Callable[[str], Any]:
    return load_schema_validator


def _observer_ranges(state: Mapping[str, Any]) -> dict[str, Any]:
    return {k: {f: v for f, v in s.items() if f != "updates"} for k, s in state["observers"].items()}


@pytest.fixture
def observer_ranges() -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """A calibration file's observer states without their update counts (how many update calls an
    observer saw depends on how the data was batched and sharded; nothing else may)."""
    return _observer_ranges
