"""Load and save ONNX models, with external data, safely.

* :func:`load_model` turns a path or an ``onnx.ModelProto`` into an :class:`onnx_ir.Model` and
  fails with one clear :class:`~onnxq.errors.ModelLoadError` line when the file is missing or not
  a regular file, is not ONNX, is truncated, holds tensors whose data does not match their dims
  or type (:mod:`onnxq.proto_check`), or its external data file is missing, short, or reached
  through a link out of the model's directory. External data is resolved
  against the model file's own (absolute) directory, so the current directory does not matter.
* :func:`save_model` is atomic: everything is written into a temporary directory beside the target
  and moved into place with ``os.replace`` (the data file first, then the model), so a failure
  never leaves a partial file behind. Models whose tensors exceed the 2 GB protobuf limit are saved
  with external data automatically, in ``<model file name>.data`` next to the model.
* :func:`atomic_files` is that mechanism for any files (reports, calibration results), and
  :func:`write_text_atomic` its one-file form.
* :func:`to_proto` gives the ``onnx.ModelProto`` of a model with every tensor inline.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import onnx
import onnx_ir as ir
from google.protobuf.message import DecodeError

from onnxq.errors import ModelLoadError, OnnxqError
from onnxq.graph import iter_graphs
from onnxq.proto_check import check_proto

logger = logging.getLogger(__name__)

#: Above this many bytes of tensor data a model is saved with external data (protobuf's hard limit
#: is 2 GiB for the whole file; the margin leaves room for the graph itself).
AUTO_EXTERNAL_BYTES = 2**31 - 2**26

#: Tensors smaller than this stay inline when saving with external data.
_EXTERNAL_THRESHOLD_BYTES = 1024


def load_model(src: str | os.PathLike[str] | onnx.ModelProto | ir.Model, *, what: str = "model") -> ir.Model:
    """Load ``src`` as an :class:`onnx_ir.Model`.

    Args:
        src: A path to an ``.onnx`` file, an ``onnx.ModelProto``, or an ``onnx_ir.Model`` (returned as is).
        what: How to call the model in error messages (e.g. ``"calibration model"``).

    Raises:
        ModelLoadError: The file is missing, not ONNX, truncated, or its external data is missing/short.
    """
    if isinstance(src, ir.Model):
        return src
    if isinstance(src, onnx.ModelProto):
        label = f"{what} (in-memory ModelProto)"
        _check_structure(src, label)
        check_proto(src, label)
        model = _deserialize(src, label)
        _check_external_data(model, label)  # external locations resolve against the current directory
        return model
    if not isinstance(src, (str, os.PathLike)):
        raise ModelLoadError(f"{what}: expected a path or an onnx.ModelProto, got {type(src).__name__}")
    path = Path(src)
    label = f"{what} file '{path}'"
    if not path.exists():
        raise ModelLoadError(f"{label} does not exist")
    if not path.is_file():
        raise ModelLoadError(f"{label} is not a regular file")
    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelLoadError(
            f"{label} is not a valid ONNX model: cannot parse it as protobuf "
            f"(truncated or not an ONNX file: {_first_line(exc)})"
        ) from exc
    _check_structure(proto, label)
    check_proto(proto, label)
    model = _deserialize(proto, label)
    base_dir = str(path.resolve().parent)
    for tensor in _external_tensors(model):
        tensor.base_dir = base_dir
    _check_external_data(model, label)
    logger.debug("loaded %s: %d nodes", label, len(model.graph))
    return model


def save_model(
    model: ir.Model | onnx.ModelProto,
    path: str | os.PathLike[str],
    *,
    external_data: bool | None = None,
    check: Callable[[Path], None] | None = None,
) -> Path:
    """Write ``model`` to ``path`` atomically and return the path.

    Args:
        model: The model to write (it is not modified).
        path: Target ``.onnx`` file; its directory must exist.
        external_data: True to put tensors in ``<file name>.data`` beside the model, False to keep
            them inline, None (default) to decide by size (external above ~2 GB).
        check: Called with the written file (its external data beside it) before it is moved
            into place; an error it raises leaves nothing behind (e.g. that onnxruntime loads it).

    Raises:
        OnnxqError: The target directory does not exist or cannot be written (the message says
            why), or an inline save was asked for a model over the protobuf limit.
    """
    if isinstance(model, onnx.ModelProto):
        model = load_model(model)
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise OnnxqError(f"cannot save model to '{target}': directory '{directory}' does not exist")
    size = tensor_bytes(model)
    use_external = external_data if external_data is not None else size > AUTO_EXTERNAL_BYTES
    if not use_external and size > AUTO_EXTERNAL_BYTES:
        raise OnnxqError(
            f"cannot save model to '{target}' inline: {size / 2**30:.2f} GiB of tensors exceeds the 2 GB "
            "protobuf limit; save it with external_data=True"
        )
    data_name = f"{target.name}.data"
    try:
        # the data file is moved first, so the model never points at a missing one
        with atomic_files(directory / data_name, target) as (_, tmp_model):
            if use_external:
                ir.save(
                    model, tmp_model, external_data=data_name, size_threshold_bytes=_EXTERNAL_THRESHOLD_BYTES
                )
            else:
                onnx.save_model(to_proto(model), str(tmp_model))
            if check is not None:
                check(tmp_model)
    except (OSError, ValueError) as exc:  # disk full, permissions, protobuf size limit
        raise OnnxqError(f"cannot save model to '{target}': {_first_line(exc)}") from exc
    logger.info("saved model to %s%s", target, f" (+ external data {data_name})" if use_external else "")
    return target


@contextlib.contextmanager
def atomic_files(*targets: str | os.PathLike[str]) -> Iterator[tuple[Path, ...]]:
    """Write files that appear complete or not at all.

    Yields one temporary path per target, ``<hidden temporary directory beside the target>/<its
    name>`` (targets in one directory share one temporary directory, so files that refer to each
    other by name, a model and its external data, can be written there as they will be). When the
    block ends without an exception the files that were written are moved into place in the order
    of ``targets`` (``os.replace``, atomic within a file system); after an exception nothing is
    moved. The temporary directories are removed either way.
    """
    paths = [Path(t) for t in targets]
    temp_dirs: dict[Path, Path] = {}
    try:
        staged = []
        for path in paths:
            parent = path.parent if str(path.parent) else Path(".")
            if parent not in temp_dirs:
                temp_dirs[parent] = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent))
            staged.append(temp_dirs[parent] / path.name)
        yield tuple(staged)
        for tmp, path in zip(staged, paths, strict=True):
            if tmp.exists():
                os.replace(tmp, path)
    finally:
        for tmp_dir in temp_dirs.values():
            shutil.rmtree(tmp_dir, ignore_errors=True)


def read_json_file(path: str | os.PathLike[str], what: str, error: type[OnnxqError], max_bytes: int) -> Any:
    """The JSON document in ``path`` (a ``what``: "qconfig file", ...), read only if it is a regular
    file of at most ``max_bytes``; any failure is one line of ``error`` naming the file."""
    p = Path(path)
    try:
        if not p.is_file():  # a FIFO or a device would block or never end
            reason = "does not exist" if not p.exists() else "not a regular file"
            raise error(f"{p}: cannot read {what} ({reason})")
        size = p.stat().st_size
        if size > max_bytes:
            raise error(f"{p}: cannot read {what} ({size} bytes, more than the {max_bytes} allowed)")
        text = p.read_bytes().decode("utf-8-sig")  # a byte-order mark is allowed, as editors write one
        return json.loads(text, object_pairs_hook=_unique_keys)
    except OSError as e:
        raise error(f"{p}: cannot read {what} ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise error(
            f"{p}: not valid JSON (not UTF-8 text) at byte {e.start} (0x{e.object[e.start]:02x})"
        ) from None
    except json.JSONDecodeError as e:
        raise error(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except _DuplicateKey as e:
        raise error(f"{p}: not valid JSON (key {e.args[0]!r} appears twice in one object)") from None
    except RecursionError:
        raise error(f"{p}: not valid JSON (nested too deeply)") from None
    except ValueError as e:  # integers of more digits than Python converts
        raise error(f"{p}: not valid JSON ({_first_line(e)})") from None


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key given twice (``json`` would keep the last silently)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def external_data_files(model: ir.Model) -> tuple[Path, ...]:
    """The files a loaded model's external tensors are read from."""
    return tuple(dict.fromkeys(Path(t.path) for t in _external_tensors(model)))


def check_outputs_apart(outputs: Mapping[str, Path | None], inputs: Mapping[str, Iterable[Path]]) -> None:
    """Refuse, in one line, an output path that is one of the inputs or another output.

    ``outputs`` maps what each output is ("output", "report") to its path; ``inputs`` what each
    input is ("input model", "calibration data") to its files. Paths are compared after resolving
    symbolic links, so a link to an input is that input.
    """
    taken: dict[Path, str] = {}
    for what, paths in inputs.items():
        for path in paths:
            taken.setdefault(Path(path).resolve(), f"the {what} '{path}'")
    for what, path in outputs.items():
        if path is None:
            continue
        real = Path(path).resolve()
        if real in taken:
            raise OnnxqError(f"{what} '{path}' is {taken[real]}; choose another file")
        taken[real] = f"the {what} '{path}'"


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` so that it appears complete or not at all."""
    with atomic_files(path) as (tmp,):
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def to_proto(model: ir.Model) -> onnx.ModelProto:
    """The ``onnx.ModelProto`` of ``model`` with every tensor inline (``model`` is not modified).

    External tensors are read into the proto, so this is for models under the 2 GB protobuf limit
    (e.g. to hand to onnxruntime as bytes); save bigger ones with :func:`save_model`.
    """
    swapped: list[tuple[ir.Value, ir.TensorProtocol]] = []
    try:
        for graph in iter_graphs(model.graph):
            for value in graph.initializers.values():
                tensor = value.const_value
                if isinstance(tensor, ir.ExternalTensor):
                    swapped.append((value, tensor))
                    value.const_value = ir.Tensor(tensor.numpy(), name=tensor.name)
        return _without_initializer_value_info(ir.serde.serialize_model(model))
    finally:
        for value, tensor in swapped:
            value.const_value = tensor


def _without_initializer_value_info(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Drop ``value_info`` entries that repeat an initializer's own type (bytes only, no information)."""
    initializers = {t.name for t in proto.graph.initializer}
    keep = [vi for vi in proto.graph.value_info if vi.name not in initializers]
    if len(keep) != len(proto.graph.value_info):
        del proto.graph.value_info[:]
        proto.graph.value_info.extend(keep)
    return proto


def tensor_bytes(model: ir.Model) -> int:
    """Total bytes of the tensors of ``model``: initializers and tensor attributes, subgraphs included."""
    total = 0
    for graph in iter_graphs(model.graph):
        for value in graph.initializers.values():
            tensor = value.const_value
            if tensor is not None:
                total += int(tensor.nbytes)
        for node in graph:
            for attr in node.attributes.values():
                if attr.is_ref():
                    continue
                if attr.type == ir.AttributeType.TENSOR:
                    total += int(attr.value.nbytes)
                elif attr.type == ir.AttributeType.TENSORS:
                    total += sum(int(t.nbytes) for t in attr.value)
    return total


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _check_structure(proto: onnx.ModelProto, label: str) -> None:
    # A protobuf cut at a field boundary still parses; what it lost shows up as missing fields
    # (fields are serialised in field-number order: graph comes before opset_import).
    if proto.ir_version <= 0 or not proto.HasField("graph"):
        raise ModelLoadError(
            f"{label} is not a valid ONNX model: it has no ir_version or no graph "
            "(truncated or not an ONNX file)"
        )
    if len(proto.opset_import) == 0:
        raise ModelLoadError(f"{label} is not a valid ONNX model: it imports no opset (truncated?)")


def _deserialize(proto: onnx.ModelProto, label: str) -> ir.Model:
    try:
        model = ir.serde.deserialize_model(proto)
    except Exception as exc:  # onnx-ir raises several types on malformed graphs
        raise ModelLoadError(f"{label} is not a valid ONNX model: {_first_line(exc)}") from exc
    try:  # nodes in the order they compute (stable: a sorted graph keeps its order)
        model.graph.sort()
    except ValueError:
        raise ModelLoadError(f"{label} is not a valid ONNX model: its graph has a cycle") from None
    return model


def _external_tensors(model: ir.Model) -> Iterator[ir.ExternalTensor]:
    for graph in iter_graphs(model.graph):
        for value in graph.initializers.values():
            if isinstance(value.const_value, ir.ExternalTensor):
                yield value.const_value
        for node in graph:
            for attr in node.attributes.values():
                if attr.is_ref():
                    continue
                if attr.type == ir.AttributeType.TENSOR and isinstance(attr.value, ir.ExternalTensor):
                    yield attr.value
                elif attr.type == ir.AttributeType.TENSORS:
                    yield from (t for t in attr.value if isinstance(t, ir.ExternalTensor))


def _check_external_data(model: ir.Model, label: str) -> None:
    sizes: dict[str, int] = {}
    for tensor in _external_tensors(model):
        location = str(tensor.location)
        if "\x00" in location:  # no file system takes it (os.path raised ValueError)
            raise ModelLoadError(
                f"{label}: external data location {location!r} (for tensor '{tensor.name}') holds a "
                "NUL character"
            )
        data_path = Path(tensor.path)
        # the real path, links followed, must stay in the model's directory: a link inside it that
        # points elsewhere is refused before anything outside is even looked at
        folder = Path(os.path.realpath(tensor.base_dir or "."))
        if (
            Path(location).is_absolute()
            or ".." in Path(location).parts
            or not Path(os.path.realpath(data_path)).is_relative_to(folder)
        ):
            raise ModelLoadError(
                f"{label}: external data location '{location}' (for tensor '{tensor.name}') must be a "
                "file inside the model's directory (no absolute path, '..' or link leading out of it)"
            )
        if location not in sizes:
            if not data_path.is_file():
                problem = "is not a regular file" if data_path.exists() else "not found"
                raise ModelLoadError(
                    f"{label}: external data file '{location}' (for tensor '{tensor.name}') {problem} "
                    f"next to the model in '{tensor.base_dir}'"
                )
            sizes[location] = data_path.stat().st_size
        offset = tensor.offset or 0
        length = tensor.length if tensor.length is not None else tensor.nbytes
        if offset + length > sizes[location]:
            raise ModelLoadError(
                f"{label}: external data file '{location}' is truncated: tensor '{tensor.name}' needs "
                f"bytes {offset}..{offset + length}, the file has {sizes[location]}"
            )


__all__ = [
    "AUTO_EXTERNAL_BYTES",
    "atomic_files",
    "check_outputs_apart",
    "external_data_files",
    "load_model",
    "read_json_file",
    "save_model",
    "tensor_bytes",
    "to_proto",
    "write_text_atomic",
]
