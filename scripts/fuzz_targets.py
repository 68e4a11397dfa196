"""The fuzz targets of ``scripts/fuzz.py``: one per loader, each with its seeds and mutator.

A target is a function of one input (bytes) that feeds it to onnxq the way a user would (the CLI
for models, calibration files and qconfigs; the library for calibration results) and raises
:class:`Finding` when onnxq breaks its promise: an exception that is not one line of
:class:`~onnxq.errors.OnnxqError`, an exit status other than 0 or 2, a traceback or more than one
error line on stderr, an input file changed, a temporary or partial file left behind, or an exit
status 0 whose model onnxruntime cannot load. A native crash kills the process, which the
driver (running each target in its own process) reports.

Mutators are structure-aware: half the time a byte-level libFuzzer mutation, otherwise a change a
careless user or another exporter makes (dims, data types, raw data lengths, attributes, external
data locations, opsets for models; shapes, dtypes, header fields, zip flags for ``.npz``; values,
types, nesting, duplicate keys for JSON).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import random
import struct
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
MAX_MODEL_BYTES = 1 << 20
MAX_FILE_BYTES = 1 << 18
#: Calibration feeds of more elements than this are not made for a fuzzed model.
MAX_FEED_ELEMENTS = 1 << 18


class Finding(AssertionError):
    """onnxq broke a promise on this input."""


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]
    mutate: Callable[[bytes, int, random.Random], bytes]
    max_len: int
    timeout_s: int


# -- the sandbox every input runs in ---------------------------------------------------------------
class Sandbox:
    """A work directory for the input files and the outputs, and a check that one input changed
    nothing else: the inputs keep their bytes, no file appears but the outputs, and the
    temporary directory holds what it held before."""

    OUTPUTS = ("out.onnx", "out.onnx.data", "report.json")

    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="onnxq-fuzz-work-"))
        self.tmp = Path(tempfile.gettempdir())

    @contextlib.contextmanager
    def case(self, inputs: dict[str, bytes]) -> Iterator[Path]:
        for name in os.listdir(self.work):
            _remove(self.work / name)
        for name, data in inputs.items():
            (self.work / name).write_bytes(data)
        tmp_before = set(os.listdir(self.tmp))
        yield self.work
        for name, data in inputs.items():
            if (self.work / name).read_bytes() != data:
                raise Finding(f"input file {name} was changed")
        extra = set(os.listdir(self.work)) - set(inputs) - set(self.OUTPUTS)
        if extra:
            raise Finding(f"files left in the work directory: {sorted(extra)}")
        left = {n for n in set(os.listdir(self.tmp)) - tmp_before if n.startswith(("onnxq", "tmp"))}
        if left:
            raise Finding(f"temporary files left behind: {sorted(left)}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            _remove(child)
        path.rmdir()
    else:
        path.unlink()


_SANDBOX: Sandbox | None = None


def sandbox() -> Sandbox:
    global _SANDBOX
    if _SANDBOX is None:
        _SANDBOX = Sandbox()
    return _SANDBOX


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``onnxq.cli.main(argv)`` with its stdout dropped and its stderr returned; raises
    :class:`Finding` on a status other than 0/2 or a stderr that is not at most one error line."""
    from onnxq.cli import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(argv)
    text = err.getvalue()
    if code not in (0, 2):
        raise Finding(f"exit status {code} for {argv}: {text[-500:]}")
    if "Traceback" in text:
        raise Finding(f"a traceback on stderr for {argv}: {text[-2000:]}")
    errors = [line for line in text.splitlines() if not line.startswith("onnxq: warning: ")]
    if code == 2 and (len(errors) != 1 or not errors[0].startswith("onnxq: error: ")):
        raise Finding(f"exit 2 without exactly one error line for {argv}: {text[-1000:]}")
    if code == 0 and errors:
        raise Finding(f"exit 0 with error output for {argv}: {text[-1000:]}")
    return code, text


def check_output_runs(path: Path, source: Path | None = None) -> None:
    """A model onnxq wrote must load in onnxruntime (what users deploy it on) when its input did."""
    from onnxq.errors import OnnxqError
    from onnxq.runtime import make_session

    try:
        make_session(str(path), what="quantized model")
    except OnnxqError as e:
        if source is not None:
            try:
                make_session(str(source), what="input model")
            except OnnxqError:
                return  # onnxruntime refuses the input too: nothing onnxq broke
        raise Finding(f"exit 0 but onnxruntime refuses the output: {e}") from None


# -- models ----------------------------------------------------------------------------------------
def calibration_for(model_bytes: bytes, rng: np.random.Generator) -> bytes | None:
    """An .npz of two samples fitting the model's graph inputs (None when they cannot be told)."""
    try:
        model = onnx.ModelProto.FromString(model_bytes)
    except Exception:  # any parse failure: the CLI must say so itself
        return None
    inits = {t.name for t in model.graph.initializer}
    arrays: dict[str, np.ndarray] = {}
    for vi in model.graph.input:
        if not isinstance(vi.name, str):  # not UTF-8: the CLI must refuse the model itself
            return None
        if vi.name in inits or not vi.name or not vi.type.HasField("tensor_type"):
            continue
        tt = vi.type.tensor_type
        try:
            dtype = (
                np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)) if tt.elem_type else np.dtype("f4")
            )
        except Exception:
            return None
        dims = (
            [d.dim_value if 0 < d.dim_value <= 64 else 2 for d in tt.shape.dim]
            if tt.HasField("shape")
            else [2]
        )
        shape = tuple([2, *dims]) if not dims else tuple([2, *dims[1:]])
        if int(np.prod(shape, dtype=np.float64)) > MAX_FEED_ELEMENTS or dtype.kind not in "biuf":
            return None
        if dtype.kind == "f":
            arr = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            arr = rng.integers(0, 2, shape).astype(bool)
        else:
            arr = rng.integers(0, 3, shape).astype(dtype)
        arrays[vi.name] = arr
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def run_model(data: bytes) -> None:
    calib = calibration_for(data, np.random.default_rng(len(data)))
    inputs = {"model.onnx": data, **({"calib.npz": calib} if calib is not None else {})}
    with sandbox().case(inputs) as work:
        w = str(work)
        run_cli(["inspect", f"{w}/model.onnx", "--json", "--scales"])
        argv = [
            "quantize",
            f"{w}/model.onnx",
            "-o",
            f"{w}/out.onnx",
            "--report",
            f"{w}/report.json",
            "--no-progress",
        ]
        if calib is not None:
            argv += ["--calib", f"{w}/calib.npz"]
        code, _ = run_cli(argv)
        if code == 0:
            check_output_runs(work / "out.onnx", work / "model.onnx")


def _tiny_models() -> list[onnx.ModelProto]:
    h, rng = helper, np.random.default_rng(0)

    def w(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    def model(
        nodes: list[onnx.NodeProto],
        inputs: list[onnx.ValueInfoProto],
        inits: list[np.ndarray],
        opset: int = 13,
        ir: int = 8,
    ) -> onnx.ModelProto:
        graph = h.make_graph(
            nodes,
            "g",
            inputs,
            [h.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)],
            [numpy_helper.from_array(a, f"w{i}") for i, a in enumerate(inits)],
        )
        return h.make_model(graph, opset_imports=[h.make_opsetid("", opset)], ir_version=ir)

    x4 = [h.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])]
    x2 = [h.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 16])]
    bn = [np.ones(4, np.float32), np.zeros(4, np.float32), np.zeros(4, np.float32), np.ones(4, np.float32)]
    models = [
        model(
            [
                h.make_node("Conv", ["x", "w0", "w1"], ["c"], pads=[1, 1, 1, 1]),
                h.make_node("BatchNormalization", ["c", "w2", "w3", "w4", "w5"], ["b"]),
                h.make_node("Relu", ["b"], ["y"]),
            ],
            x4,
            [w(4, 3, 3, 3), w(4), *bn],
        ),
        model(
            [h.make_node("Gemm", ["x", "w0", "w1"], ["g"], transB=1), h.make_node("Relu", ["g"], ["y"])],
            x2,
            [w(8, 16), w(8)],
        ),
        model(
            [
                h.make_node("MatMul", ["x", "w0"], ["m"]),
                h.make_node("Add", ["m", "w1"], ["a"]),
                h.make_node("Softmax", ["a"], ["y"], axis=-1),
            ],
            x2,
            [w(16, 8), w(8)],
        ),
        model(
            [
                h.make_node("Conv", ["x", "w0"], ["c"], group=3),
                h.make_node("AveragePool", ["c"], ["p"], kernel_shape=[2, 2]),
                h.make_node("Concat", ["p", "p"], ["k"], axis=1),
                h.make_node("GlobalAveragePool", ["k"], ["y"]),
            ],
            x4,
            [w(6, 1, 3, 3)],
        ),
        model(
            [h.make_node("Gather", ["w0", "ids"], ["e"]), h.make_node("ReduceMean", ["e"], ["y"], axes=[1])],
            [h.make_tensor_value_info("ids", TensorProto.INT64, [1, 5])],
            [w(10, 8)],
        ),
        model(
            [h.make_node("LSTM", ["x", "w0", "w1"], ["y"], hidden_size=4)],
            [h.make_tensor_value_info("x", TensorProto.FLOAT, [5, 1, 3])],
            [w(1, 16, 3), w(1, 16, 4)],
        ),
        model(
            [
                h.make_node("ConvTranspose", ["x", "w0"], ["t"], strides=[2, 2]),
                h.make_node("Sigmoid", ["t"], ["y"]),
            ],
            x4,
            [w(3, 2, 2, 2)],
            opset=11,
            ir=6,
        ),
    ]
    # weights as Constant nodes inside If branches
    then = h.make_graph(
        [
            h.make_node("Constant", [], ["k"], value=numpy_helper.from_array(w(16, 16))),
            h.make_node("MatMul", ["x", "k"], ["t"]),
        ],
        "then",
        [],
        [h.make_tensor_value_info("t", TensorProto.FLOAT, None)],
    )
    other = h.make_graph(
        [h.make_node("Relu", ["x"], ["e"])],
        "else",
        [],
        [h.make_tensor_value_info("e", TensorProto.FLOAT, None)],
    )
    models.append(
        model(
            [h.make_node("If", ["flag"], ["y"], then_branch=then, else_branch=other)],
            [*x2, h.make_tensor_value_info("flag", TensorProto.BOOL, [])],
            [],
        )
    )
    return models


def model_seeds() -> list[bytes]:
    seeds = [(ROOT / "onnxq" / "data" / "digits_cnn.onnx").read_bytes()]
    seeds += [m.SerializeToString() for m in _tiny_models()]
    backend = Path(onnx.__file__).parent / "backend" / "test" / "data"
    # onnx's own test models: old opsets, IR 3, initializers as inputs, ops of every kind
    found = sorted(backend.glob("*/**/*.onnx")) if backend.is_dir() else []
    seeds += [p.read_bytes() for p in found if p.stat().st_size < MAX_MODEL_BYTES // 4]
    return seeds


_BIG = [-(2**63), -(2**31), -1, 0, 1, 2, 3, 7, 64, 2**31, 2**32, 2**62]
_OPS = [
    "Conv",
    "Gemm",
    "MatMul",
    "Add",
    "Relu",
    "Clip",
    "Reshape",
    "If",
    "LSTM",
    "Gather",
    "Concat",
    "Resize",
    "QuantizeLinear",
    "DequantizeLinear",
    "ConvTranspose",
    "Identity",
    "Constant",
    "Unknown",
]


def _tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    out = list(model.graph.initializer)
    for node in model.graph.node:
        out += [a.t for a in node.attribute if a.type == onnx.AttributeProto.TENSOR]
    return out


def mutate_model(data: bytes, max_size: int, rng: random.Random) -> bytes:
    try:
        model = onnx.ModelProto.FromString(data)
    except Exception:
        return data
    graph = model.graph
    choice = rng.randrange(14)
    tensors = _tensors(model)
    nodes = list(graph.node)
    if choice == 0 and tensors:
        t = rng.choice(tensors)
        if t.dims:
            t.dims[rng.randrange(len(t.dims))] = rng.choice(_BIG)
        else:
            t.dims.append(rng.choice(_BIG))
    elif choice == 1 and tensors:
        rng.choice(tensors).data_type = rng.choice(
            [0, 1, 2, 3, 6, 7, 8, 9, 10, 11, 16, 17, 21, 22, 23, 25, 99]
        )
    elif choice == 2 and tensors:
        t = rng.choice(tensors)
        cut = rng.choice([0, 1, 3, len(t.raw_data) // 2, len(t.raw_data) + 4])
        t.raw_data = (t.raw_data + b"\x7f" * 8)[:cut]
    elif choice == 3 and tensors:
        t = rng.choice(tensors)
        t.data_location = TensorProto.EXTERNAL
        del t.external_data[:]
        for key, value in (
            ("location", rng.choice(["w.data", "../w.data", "/etc/hostname", "model.onnx", "", "calib.npz"])),
            ("offset", rng.choice(["0", "4", "-1", "x", "99999999999999999999"])),
            ("length", rng.choice(["0", "16", "432", "-5"])),
        ):
            if rng.random() < 0.8:
                e = t.external_data.add()
                e.key, e.value = key, value
    elif choice == 4 and nodes:
        node = rng.choice(nodes)
        if node.attribute:
            attr = rng.choice(list(node.attribute))
            if attr.type == onnx.AttributeProto.INT:
                attr.i = rng.choice(_BIG)
            elif attr.type == onnx.AttributeProto.INTS:
                attr.ints[:] = [rng.choice(_BIG) for _ in range(rng.randrange(0, 6))]
            elif attr.type == onnx.AttributeProto.FLOAT:
                attr.f = rng.choice([0.0, -1.0, 1e30, float("nan"), float("inf")])
            elif attr.type == onnx.AttributeProto.STRING:
                attr.s = rng.choice([b"", b"NOTSET", b"linear", b"\xff\xfe", b"x" * 300])
            else:
                node.attribute.remove(attr)
        else:
            node.attribute.append(
                helper.make_attribute(rng.choice(["group", "axis", "transB", "pads"]), rng.choice(_BIG))
            )
    elif choice == 5 and nodes:
        rng.choice(nodes).op_type = rng.choice(_OPS)
    elif choice == 6 and nodes:
        node = rng.choice(nodes)
        names = [o for n in nodes for o in n.output] + [i.name for i in graph.input] + ["", "nope"]
        if node.input and rng.random() < 0.7:
            node.input[rng.randrange(len(node.input))] = rng.choice(names)
        elif node.output:
            node.output[rng.randrange(len(node.output))] = rng.choice(names)
    elif choice == 7 and nodes:
        if rng.random() < 0.5:
            graph.node.remove(rng.choice(nodes))
        else:
            graph.node.append(onnx.NodeProto.FromString(rng.choice(nodes).SerializeToString()))
    elif choice == 8 and graph.input:
        vi = rng.choice(list(graph.input))
        tt = vi.type.tensor_type
        if rng.random() < 0.4:
            tt.elem_type = rng.choice([0, 1, 2, 3, 6, 7, 9, 10, 11, 16, 99])
        elif tt.shape.dim:
            d = tt.shape.dim[rng.randrange(len(tt.shape.dim))]
            if rng.random() < 0.5:
                d.dim_value = rng.choice([-1, 0, 1, 2, 5, 2**40])
            else:
                d.dim_param = rng.choice(["N", "batch", ""])
        else:
            tt.shape.dim.add().dim_value = rng.choice([-1, 0, 1, 2])
    elif choice == 9:
        if model.opset_import:
            model.opset_import[0].version = rng.choice(
                [1, 6, 7, 9, 10, 11, 12, 13, 17, 19, 21, 22, 23, 25, 99]
            )
        if rng.random() < 0.2:
            model.opset_import.add().domain = rng.choice(["com.microsoft", "ai.onnx.ml", "custom"])
    elif choice == 10:
        model.ir_version = rng.choice([0, 1, 3, 4, 6, 7, 8, 9, 10, 11, 12, 99])
    elif choice == 11 and graph.initializer:
        if rng.random() < 0.5:  # an initializer also listed as a graph input (IR 3 style)
            t = rng.choice(list(graph.initializer))
            graph.input.append(helper.make_tensor_value_info(t.name, t.data_type or 1, list(t.dims)))
        else:
            graph.initializer.remove(rng.choice(list(graph.initializer)))
    elif choice == 12 and nodes:
        node = rng.choice(nodes)
        node.name = rng.choice(["", nodes[0].name, "dup", "x" * 200])
    else:
        target = rng.choice([graph.name, nodes[0].name if nodes else "", model.producer_name])
        target = target if isinstance(target, bytes) else target.encode()
        out = model.SerializeToString()
        if target:
            out = out.replace(target, target[:-1] + b"\xff", 1)  # invalid UTF-8 in a string field
        return out[:max_size]
    out = model.SerializeToString()
    return out if len(out) <= max_size else data


# -- calibration .npz ------------------------------------------------------------------------------
def run_npz(data: bytes) -> None:
    digits = (ROOT / "onnxq" / "data" / "digits_cnn.onnx").read_bytes()
    with sandbox().case({"model.onnx": digits, "calib.npz": data}) as work:
        w = str(work)
        argv = [
            "quantize",
            f"{w}/model.onnx",
            "-o",
            f"{w}/out.onnx",
            "--calib",
            f"{w}/calib.npz",
            "--no-progress",
        ]
        code, _ = run_cli(argv)
        if code == 0:
            check_output_runs(work / "out.onnx")


def npz_seeds() -> list[bytes]:
    with np.load(ROOT / "onnxq" / "data" / "digits_calib.npz") as z:
        arrays = {k: z[k] for k in z.files}
    ((name, full),) = arrays.items()
    seeds = []
    for n, compress in ((4, False), (3, True), (1, False)):
        buf = io.BytesIO()
        (np.savez_compressed if compress else np.savez)(buf, **{name: full[:n]})
        seeds.append(buf.getvalue())
    buf = io.BytesIO()
    np.savez(buf, **{name: np.asfortranarray(full[:2]), "extra": np.zeros(2, np.int64)})
    seeds.append(buf.getvalue())
    return seeds


def mutate_npz(data: bytes, max_size: int, rng: random.Random) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            entries = [(i, zf.read(i)) for i in zf.infolist()]
    except Exception:
        return data
    if not entries:
        return data
    choice = rng.randrange(7)
    info, content = rng.choice(entries)
    if choice == 0:  # another header: shape, dtype or order
        shapes = [
            "()",
            "(0,)",
            "(1,)",
            "(4, 1, 8, 8)",
            "(10**12,)",
            "(-1, 8)",
            "(2, 2, 2, 2, 2)",
            "(4, 8, 8, 1)",
        ]
        header = {
            "descr": rng.choice(["<f4", ">f4", "<f8", "<i8", "|u1", "|b1", "|O", "<c8", "V8", "<U4"]),
            "fortran_order": rng.random() < 0.3,
            "shape": rng.choice(shapes),
        }
        text = "{" + ", ".join(f"'{k}': {v if k == 'shape' else repr(v)}" for k, v in header.items()) + "}"
        head = io.BytesIO()
        try:
            np.lib.format.write_array_header_1_0(
                head, {"descr": "<f4", "fortran_order": False, "shape": (1,)}
            )
        except Exception:
            return data
        raw = head.getvalue()
        new_head = raw[:8] + struct.pack("<H", len(text) + 1) + text.encode() + b"\n"
        start = (
            10 + struct.unpack("<H", content[8:10])[0]
            if content[:6] == b"\x93NUMPY" and len(content) > 10
            else 0
        )
        content = new_head + content[start:]
    elif choice == 1:
        cut = rng.choice([0, 6, 10, len(content) // 2, len(content) - 1])
        content = content[:cut]
    elif choice == 2:
        content = content + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    buf = io.BytesIO()
    with zipfile.ZipFile(
        buf,
        "w",
        compression=rng.choice(
            [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]
        ),
    ) as zf:
        for i, c in entries:
            if i is info:
                c = content
            name = i.filename
            if choice == 3 and i is info:
                name = rng.choice(["x.npy", "x", "x.txt", "../x.npy", "input.npy", entries[0][0].filename])
            zf.writestr(name, c)
            if choice == 4 and i is info:
                zf.writestr(name.replace(".npy", "_2.npy"), c)
    out = bytearray(buf.getvalue())
    if choice in (5, 6):  # a central-directory field: flags (encryption) or the uncompressed size
        at = out.find(b"PK\x01\x02")
        if at >= 0:
            if choice == 5:
                struct.pack_into("<H", out, at + 8, rng.choice([1, 8, 0x41]))
            else:
                struct.pack_into("<I", out, at + 24, rng.choice([0, 1, 0xFFFFFFF0, 1 << 31]))
    return bytes(out[:max_size])


# -- qconfig JSON ----------------------------------------------------------------------------------
def run_qconfig(data: bytes) -> None:
    digits = (ROOT / "onnxq" / "data" / "digits_cnn.onnx").read_bytes()
    calib = npz_seeds()[2]
    with sandbox().case({"model.onnx": digits, "calib.npz": calib, "q.json": data}) as work:
        w = str(work)
        argv = [
            "quantize",
            f"{w}/model.onnx",
            "-o",
            f"{w}/out.onnx",
            "--calib",
            f"{w}/calib.npz",
            "--qconfig",
            f"{w}/q.json",
            "--no-progress",
        ]
        code, _ = run_cli(argv)
        if code == 0:
            check_output_runs(work / "out.onnx")


def qconfig_seeds() -> list[bytes]:
    from onnxq.qconfig import PRESETS, QConfig, QConfigMapping, QSpec, get_default_qconfig
    from onnxq.scheme import PerBlock, PerChannel
    from onnxq.targets import TARGETS, target_mapping

    mappings = [QConfigMapping(global_qconfig=get_default_qconfig(p)) for p in PRESETS]
    mappings += [target_mapping(t) for t in TARGETS]
    x86 = get_default_qconfig("x86")
    mappings.append(
        QConfigMapping(
            global_qconfig=QConfig(
                QSpec("uint8", observer="moving_average_minmax", observer_args={"averaging_constant": 0.1}),
                x86.weight,
            ),
            op_types={
                "Gemm": None,
                "Conv": QConfig(None, QSpec("int4", symmetric=True, granularity=PerBlock(32))),
            },
            node_names={"conv1": x86},
            node_name_regexes=(
                (
                    r"conv\d+",
                    QConfig(
                        QSpec("int16", symmetric=True),
                        QSpec("int8", symmetric=True, granularity=PerChannel()),
                    ),
                ),
            ),
        )
    )
    return [json.dumps(m.to_dict(), indent=1).encode() for m in mappings]


_JSON_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**31,
    10**400,
    1e308,
    -0.5,
    0.5,
    float("nan"),
    "",
    "x86",
    "int8",
    "uint4",
    "(",
    "histogram",
    "minmax",
    [],
    {},
    [1, 2],
    {"bins": 10**9},
]


def _json_paths(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _json_paths(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _json_paths(v, (*path, i))


def mutate_json(data: bytes, max_size: int, rng: random.Random) -> bytes:
    try:
        doc = json.loads(data)
    except Exception:
        return data
    paths = list(_json_paths(doc))
    path = rng.choice(paths)
    choice = rng.randrange(6)
    if not path:
        doc = rng.choice(_JSON_VALUES) if choice == 0 else doc
    else:
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        if choice <= 2:
            parent[key] = rng.choice(_JSON_VALUES)
        elif choice == 3 and isinstance(parent, dict):
            del parent[key]
        elif choice == 4 and isinstance(parent, dict):
            parent[rng.choice(["extra", "observer_args", "granularity", "block_size", "axis", "version"])] = (
                rng.choice(_JSON_VALUES)
            )
        else:
            parent[key] = [[[[parent[key]]]]] if rng.random() < 0.5 else {"k": parent[key]}
    text = json.dumps(doc, allow_nan=True).encode()
    if rng.random() < 0.05:
        text = b"[" * 20000 + text + b"]" * 20000
    elif rng.random() < 0.05:
        text = text.replace(b'"dtype"', b'"dtype": "int8", "dtype"', 1)  # a duplicate key
    elif rng.random() < 0.05:
        text = text.decode().encode("utf-16")
    return text[:max_size]


# -- calibration result JSON -----------------------------------------------------------------------
_PREPARED: list[Any] = []
_STATS_QCONFIGS = ("x86", "qnnpack", None)


def _prepared() -> list[Any]:
    """The bundled model prepared for each qconfig the stats seeds were made with."""
    from onnxq.api import prepare

    if not _PREPARED:
        _PREPARED.extend(prepare(ROOT / "onnxq" / "data" / "digits_cnn.onnx", q) for q in _STATS_QCONFIGS)
    return _PREPARED


def run_stats(data: bytes) -> None:
    """A calibration result file, loaded and used as users do: to convert a prepared model."""
    from onnxq.calibration.result import CalibrationResult
    from onnxq.errors import OnnxqError
    from onnxq.runtime import make_session

    with sandbox().case({"stats.json": data}) as work:
        try:
            result = CalibrationResult.load(work / "stats.json")
        except OnnxqError as e:
            if "\n" in str(e):
                raise Finding(f"a multi-line error: {e!r}") from None
            return
        CalibrationResult.from_state_dict(json.loads(json.dumps(result.state_dict())))
        for prepared in _prepared():
            try:
                model = prepared.convert(calibration=result.merge(result))
            except OnnxqError as e:
                if "\n" in str(e):
                    raise Finding(f"a multi-line error: {e!r}") from None
                continue
            try:
                make_session(model, what="model converted from a loaded result")
            except OnnxqError as e:
                raise Finding(f"converted from a loaded result, onnxruntime refuses it: {e}") from None


def stats_seeds() -> list[bytes]:
    from onnxq.api import prepare

    with np.load(ROOT / "onnxq" / "data" / "digits_calib.npz") as z:
        batch = {k: z[k][:8] for k in z.files}
    seeds = []
    for qconfig in _STATS_QCONFIGS:
        prepared = prepare(ROOT / "onnxq" / "data" / "digits_cnn.onnx", qconfig)
        result = prepared.calibrate(batch, progress=False)
        seeds.append(json.dumps(result.state_dict()).encode())
    return seeds


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("model", run_model, model_seeds, mutate_model, MAX_MODEL_BYTES, 60),
        Target("npz", run_npz, npz_seeds, mutate_npz, MAX_FILE_BYTES, 30),
        Target("qconfig", run_qconfig, qconfig_seeds, mutate_json, MAX_FILE_BYTES, 30),
        Target("stats", run_stats, stats_seeds, mutate_json, MAX_FILE_BYTES * 4, 30),
    )
}

if str(ROOT) not in sys.path:  # the targets import onnxq from the source tree
    sys.path.insert(0, str(ROOT))
