"""The one place that makes onnxruntime sessions.

Calibration, the demo, the opset probe of the normalize pass and the benchmark scripts all get
their sessions here, so options mean the same everywhere:

* ``threads``: intra-op threads (None: onnxruntime's default, one per core); inter-op is 1;
* ``optimize``: all graph optimisations (the default: what deployment runs) or none;
* ``spinning``: idle intra-op threads spin (onnxruntime's default) or sleep — calibration turns it
  off, since the observer thread works on the same cores;
* ``memory_arena``: keep onnxruntime's CPU arena (its default) or free memory after each run —
  calibration turns it off, since the arena would hold the peak of the largest run for good;
* ``providers``: onnxruntime execution providers, the CPU one by default.

Every session made here has onnxq's custom ops registered (:func:`register_custom_ops`), so a
model lowered to onnxq's kernels (domain ``ai.onnxq``) runs like any other;
:func:`InferenceSession` is the drop-in for ``onnxruntime.InferenceSession`` that does the same
for users' own code.

:func:`session_with_outputs` runs a model with some of its intermediate tensors as extra outputs
(calibration): the model goes to onnxruntime as a file in a temporary directory with its weights
as external data, which onnxruntime maps rather than copies (models over 2 GB take the same path).
Every failure to build a session is an :class:`~onnxq.errors.UnsupportedModelError` of one line.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort

from onnxq.errors import UnsupportedModelError
from onnxq.io import to_proto
from onnxq.opsets import MIN_OPSET

ModelInput = bytes | str | os.PathLike[str] | onnx.ModelProto | ir.Model
_PROVIDERS = ("CPUExecutionProvider",)


def session_options(
    *,
    threads: int | None = None,
    optimize: bool = True,
    spinning: bool = True,
    memory_arena: bool = True,
) -> ort.SessionOptions:
    """onnxruntime session options (see the module docstring for what each argument means)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.enable_cpu_mem_arena = memory_arena
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 4  # errors come back as exceptions (:func:`error_text`), not as log lines
    register_custom_ops(opts)
    return opts


#: The session config entry that marks options onnxq's ops are registered in (onnxruntime
#: refuses a second registration of the same domain).
_REGISTERED = "onnxq.custom_ops_registered"
#: How to run a model with onnxq's ops, for error messages.
REGISTER_HINT = (
    "the model uses onnxq's custom ops (domain ai.onnxq): run it with onnxq.runtime.InferenceSession, "
    "or call SessionOptions.register_custom_ops_library(onnxq.kernels.library_path()) first"
)


def register_custom_ops(
    opts: ort.SessionOptions, library: str | os.PathLike[str] | None = None
) -> ort.SessionOptions:
    """Register onnxq's custom ops in ``opts`` (once; later calls do nothing) and return it.

    ``library``: the custom-op shared object, by default this installation's
    (:func:`onnxq.kernels.custom_ops.library_path`); another one is, for example, a build for
    another onnxq version.

    Raises:
        UnsupportedModelError: The installed onnxruntime is too old for the ops, the native
            kernels are not built, or ``library`` is built for another architecture (the message
            gives onnxruntime's error, then one line saying which build this machine needs).
    """
    try:
        if opts.get_session_config_entry(_REGISTERED) == "1":
            return opts
    except RuntimeError:  # onnxruntime raises for a key it does not hold
        pass
    from onnxq.kernels.custom_ops import library_path

    path = os.fspath(library) if library is not None else library_path()
    try:
        opts.register_custom_ops_library(path)
    except Exception as e:  # onnxruntime's own exception types
        message = f"cannot register onnxq's custom ops: {error_text(e)}"
        built_for, here = elf_machine(path), host_machine()
        if built_for is not None and built_for != here:
            message += (
                f"\n{path} is onnxq's library built for {built_for}, this machine is {here}: use a "
                f"build for {here} (pip install onnxq on this machine, or cross-build native/ as "
                "scripts/arm_check.sh does)"
            )
        raise UnsupportedModelError(message) from None
    opts.add_session_config_entry(_REGISTERED, "1")
    return opts


#: ELF ``e_machine`` values of the architectures onnxq's kernels are built for, and a few others.
_ELF_MACHINES = {3: "i386", 40: "arm", 62: "x86_64", 183: "aarch64", 243: "riscv64"}
_MACHINE_ALIASES = {"amd64": "x86_64", "arm64": "aarch64", "x64": "x86_64"}


def elf_machine(path: str | os.PathLike[str]) -> str | None:
    """The architecture a shared object is built for, from its ELF header (None when the file
    is not ELF or cannot be read)."""
    try:
        with open(path, "rb") as f:
            header = f.read(20)
    except OSError:
        return None
    if len(header) < 20 or header[:4] != b"\x7fELF" or header[5] not in (1, 2):
        return None
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    return _ELF_MACHINES.get(machine, f"ELF machine {machine}")


def host_machine() -> str:
    """This machine's architecture, named as in :func:`elf_machine`."""
    import platform

    name = platform.machine().lower()
    return _MACHINE_ALIASES.get(name, name)


def InferenceSession(
    path_or_bytes: str | bytes | os.PathLike[str],
    sess_options: ort.SessionOptions | None = None,
    providers: Sequence[str] | None = None,
    **kwargs: object,
) -> ort.InferenceSession:
    """``onnxruntime.InferenceSession`` with onnxq's custom ops registered in ``sess_options``
    (new options when None); every other argument is onnxruntime's."""
    opts = register_custom_ops(sess_options if sess_options is not None else ort.SessionOptions())
    source = os.fspath(path_or_bytes) if isinstance(path_or_bytes, os.PathLike) else path_or_bytes
    return ort.InferenceSession(source, opts, providers=providers, **kwargs)  # type: ignore[arg-type]


def make_session(
    model: ModelInput,
    *,
    what: str = "model",
    threads: int | None = None,
    optimize: bool = True,
    spinning: bool = True,
    memory_arena: bool = True,
    providers: Sequence[str] = _PROVIDERS,
) -> ort.InferenceSession:
    """A session for ``model`` (bytes, a path, an ``onnx.ModelProto`` or an ``onnx_ir.Model``).

    ``what`` names the model in the error raised when onnxruntime refuses it.
    """
    opts = session_options(threads=threads, optimize=optimize, spinning=spinning, memory_arena=memory_arena)
    source: bytes | str
    if isinstance(model, ir.Model):
        source = to_proto(model).SerializeToString()
    elif isinstance(model, onnx.ModelProto):
        source = model.SerializeToString()
    elif isinstance(model, (str, os.PathLike)):
        source = os.fspath(model)
    else:
        source = model
    try:
        return ort.InferenceSession(source, opts, providers=list(providers))
    except Exception as e:  # onnxruntime raises its own exception types
        path = source if isinstance(source, str) else None
        raise UnsupportedModelError(f"onnxruntime cannot run the {what}: {error_text(e, path)}") from None


def error_text(exc: BaseException, model_path: str | None = None) -> str:
    """The first line of an onnxruntime error, without its ``[ONNXRuntimeError] : 1 : FAIL :``
    prefix and without the path of a temporary model file (``model_path``)."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    text = re.sub(
        r"^Non-zero status code returned while running (\w+) node\. Name:'(.*?)' Status Message: ",
        r"node '\2' (\1): ",
        text,
    )
    if "ai.onnxq:" in text and "is not a registered function/op" in text:
        text = f"{text}; {REGISTER_HINT}"
    if model_path:
        text = re.sub(rf"Load model from {re.escape(model_path)} failed: ?", "", text).replace(
            model_path, "model"
        )
    return text


@contextlib.contextmanager
def session_with_outputs(
    model: ir.Model, outputs: Sequence[str], *, what: str = "model", **options: object
) -> Iterator[ort.InferenceSession]:
    """A session computing the node outputs named ``outputs`` besides the model's own outputs.

    The model is written to a temporary directory with its weights as external data, and its own
    outputs are restored before the session is handed out; ``options`` are :func:`make_session`'s.
    """
    graph = model.graph
    by_name = {str(o.name): o for n in graph for o in n.outputs}
    orig_outputs = list(graph.outputs)
    extra = [by_name[n] for n in outputs if all(by_name[n] is not o for o in orig_outputs)]
    with tempfile.TemporaryDirectory(prefix="onnxq-session-") as tmp:
        path = Path(tmp) / "model.onnx"
        graph.outputs.extend(extra)
        try:
            ir.save(model, path, external_data="model.onnx.data")
        finally:
            graph.outputs.clear()
            graph.outputs.extend(orig_outputs)
        yield make_session(path, what=what, **options)  # type: ignore[arg-type]


@functools.cache
def max_opset() -> int:
    """The newest ai.onnx opset the installed onnxruntime accepts (probed once with a tiny model)."""
    h = onnx.helper
    for version in range(onnx.defs.onnx_opset_version() + 2, MIN_OPSET - 1, -1):
        graph = h.make_graph(
            [h.make_node("Relu", ["x"], ["y"])],
            "probe",
            [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
            [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
        )
        probe = h.make_model(graph, opset_imports=[h.make_opsetid("", version)], ir_version=8)
        try:
            make_session(probe, what="opset probe")
        except UnsupportedModelError:
            continue
        return version
    return MIN_OPSET


@functools.cache
def ort_u8s8_saturates() -> bool:
    """True when this onnxruntime's uint8 x int8 kernels saturate on this CPU (probed once).

    MLAS multiplies u8 activations by s8 weights with ``vpmaddubsw`` on x86 CPUs with AVX2 but
    without VNNI, summing each pair of products in int16 with saturation: the probe multiplies
    ``[255, 255]`` by ``[127, 127]`` (64770, past 2^15 - 1) with ``MatMulInteger``. Where it
    saturates, a U8S8 model's integer results on onnxruntime are not exact; its uint8 twin
    (:class:`onnxq.passes.uint8_twin.Uint8Twin`) is.
    """
    h = onnx.helper
    graph = h.make_graph(
        [h.make_node("MatMulInteger", ["a", "b"], ["y"])],
        "u8s8_probe",
        [h.make_tensor_value_info("a", onnx.TensorProto.UINT8, [1, 2])],
        [h.make_tensor_value_info("y", onnx.TensorProto.INT32, [1, 1])],
        [h.make_tensor("b", onnx.TensorProto.INT8, [2, 1], [127, 127])],
    )
    probe = h.make_model(graph, opset_imports=[h.make_opsetid("", MIN_OPSET)], ir_version=8)
    session = make_session(probe, what="u8s8 saturation probe", threads=1)
    (y,) = session.run(None, {"a": np.full((1, 2), 255, np.uint8)})
    return int(y.reshape(-1)[0]) != 2 * 255 * 127


__all__ = [
    "REGISTER_HINT",
    "InferenceSession",
    "elf_machine",
    "error_text",
    "host_machine",
    "make_session",
    "max_opset",
    "ort_u8s8_saturates",
    "register_custom_ops",
    "session_options",
    "session_with_outputs",
]
