"""Checks a model's protobuf passes before anything reads its tensors.

Protobuf parses what the schema allows, which is far more than what a model can mean: a
tensor's ``raw_data`` may be shorter or longer than its dims say, dims may be negative,
``data_type`` may be 0 or unknown, external data may claim a length that is not its dims' size, a
``string`` field may hold bytes that are not UTF-8, a graph input may have no name. Each of these
otherwise surfaces deep inside onnx-ir, numpy or onnxruntime as a traceback. Nor does protobuf
know that a node may only read names its graph (or an enclosing one) defines, and that a graph
output must be defined. :func:`check_proto` walks every message once (subgraphs and functions
included, iteratively: no recursion limit) and raises one :class:`~onnxq.errors.ModelLoadError`
line naming the tensor, field or node.

A tensor of ``n = prod(dims)`` elements of a ``b``-bit type must hold ``ceil(n b / 8)`` bytes of
``raw_data`` or of external data, or ``n`` values in its typed field (two per element for the
complex types, in ``float_data`` or ``double_data``); a tensor of no elements may hold no data.
"""

from __future__ import annotations

import math

import onnx
import onnx_ir as ir
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from onnxq.errors import ModelLoadError

T = onnx.TensorProto
#: The typed field that holds each type's values, and how many values per element.
_TYPED_FIELD: dict[int, tuple[str, int]] = {
    T.FLOAT: ("float_data", 1),
    T.COMPLEX64: ("float_data", 2),
    T.DOUBLE: ("double_data", 1),
    T.COMPLEX128: ("double_data", 2),
    T.INT64: ("int64_data", 1),
    T.UINT32: ("uint64_data", 1),
    T.UINT64: ("uint64_data", 1),
    T.STRING: ("string_data", 1),
    **{
        dt: ("int32_data", 1)
        for dt in (T.INT32, T.INT16, T.INT8, T.UINT16, T.UINT8, T.BOOL, T.FLOAT16, T.BFLOAT16)
    },
}
_DATA_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")


def check_proto(proto: onnx.ModelProto, label: str) -> None:
    """Raise :class:`ModelLoadError` (``label``: how to name the model) on the first defect."""
    _check_fields(proto, label)
    opsets = {("" if i.domain == "ai.onnx" else i.domain): i.version for i in proto.opset_import}
    _check_references(proto.graph, opsets, label)


def _check_references(main: onnx.GraphProto, opsets: dict[str, int], label: str) -> None:
    """Every name a node reads and every graph output is defined in its graph or an enclosing one
    (a graph input, an initializer, a node output; ``""`` is an omitted optional input), and every
    node of a standard domain is as its schema allows."""
    stack: list[tuple[onnx.GraphProto, frozenset[str], str]] = [(main, frozenset(), "the main graph")]
    while stack:
        graph, outer, where = stack.pop()
        _check_single_assignment(graph, where, label)
        defined = set(outer)
        defined.update(i.name for i in graph.input)
        defined.update(t.name for t in graph.initializer)
        defined.update(t.values.name for t in graph.sparse_initializer)
        defined.update(o for n in graph.node for o in n.output if o)
        constants = {t.name: t for t in graph.initializer}
        constants.update(  # Constant nodes too: they become initializers before anything folds
            (n.output[0], a.t)
            for n in graph.node
            if n.op_type == "Constant" and n.output
            for a in n.attribute
            if a.name == "value" and a.HasField("t")
        )
        for node in graph.node:
            _check_schema(node, opsets, where, label)
            if node.op_type == "ConstantOfShape" and node.input and node.input[0] in constants:
                _check_constant_shape(node, constants[node.input[0]], where, label)
            if node.op_type == "Expand" and len(node.input) > 1 and node.input[1] in constants:
                _check_constant_shape(node, constants[node.input[1]], where, label)
            for name in node.input:
                if name and name not in defined:
                    raise ModelLoadError(
                        f"{label}: node '{node.name}' ({node.op_type}) in {where} reads '{name}', "
                        "which no node, graph input or initializer defines"
                    )
            for attr in node.attribute:
                subgraphs = [attr.g] if attr.HasField("g") else list(attr.graphs)
                scope = frozenset(defined)
                stack.extend((g, scope, f"the '{attr.name}' body of node '{node.name}'") for g in subgraphs)
        for output in graph.output:
            if output.name not in defined:
                raise ModelLoadError(
                    f"{label}: output '{output.name}' of {where} is not produced by any node, graph input "
                    "or initializer"
                )


#: The most elements a ConstantOfShape or Expand with a constant shape may make (2^28: 1 GiB of
#: float32).
#: A model asking for more never runs, and onnx's shape inference would allocate it.
MAX_CONSTANT_OF_SHAPE = 1 << 28


def _check_constant_shape(node: onnx.NodeProto, shape: onnx.TensorProto, where: str, label: str) -> None:
    """A ConstantOfShape (or Expand) whose shape is an initializer makes a tensor of a size known now
    (at least): refuse
    one too large to exist (the fuzzer's find: a shape of 3.6e16 drove onnx's data propagation to
    allocate tens of GB)."""
    try:
        dims = [int(d) for d in onnx.numpy_helper.to_array(shape).reshape(-1)]
    except Exception:  # malformed data: the tensor check reports it
        return
    total = math.prod(max(d, 0) for d in dims)
    if any(d < 0 for d in dims) or math.prod(max(d, 1) for d in dims) > MAX_CONSTANT_OF_SHAPE:
        raise ModelLoadError(
            f"{label}: node '{node.name}' ({node.op_type}) in {where} would make a tensor of shape "
            f"{dims[:8]}{'...' if len(dims) > 8 else ''} ({total:.3g} elements; "
            f"at most {MAX_CONSTANT_OF_SHAPE})"
        )


#: The domains whose schemas onnx knows (others: custom ops, checked by whoever runs them).
_SCHEMA_DOMAINS = ("", "ai.onnx.ml")


def _check_schema(node: onnx.NodeProto, opsets: dict[str, int], where: str, label: str) -> None:
    """A standard node as its operator's schema at the model's opset allows: how many inputs and
    outputs, which attributes and of which type, the required ones present; a ``Constant`` holds
    exactly one value. onnx-ir, onnx's version converter and onnxruntime trust this (what
    ``onnx.checker`` checks of a node; its graph-level rules, stricter than onnxruntime, are not
    applied)."""
    domain = "" if node.domain == "ai.onnx" else node.domain
    if domain not in _SCHEMA_DOMAINS:
        return
    named = f"node '{node.name}' ({node.op_type}) in {where}"
    shown = domain or "ai.onnx"
    if domain not in opsets:
        raise ModelLoadError(f"{label}: {named} is in domain {shown}, which the model imports no opset of")
    version = opsets[domain]
    try:
        schema = onnx.defs.get_schema(node.op_type, version, domain)
    except onnx.defs.SchemaError:
        raise ModelLoadError(
            f"{label}: {named}: {shown} opset {version} has no operator {node.op_type}"
        ) from None
    for kind, count, low, high in (
        ("inputs", len(node.input), schema.min_input, schema.max_input),
        ("outputs", len(node.output), schema.min_output, schema.max_output),
    ):
        if not low <= count <= high:
            allowed = f"{low}" if low == high else f"{low} to {high}"
            raise ModelLoadError(
                f"{label}: {named} has {count} {kind}; {node.op_type} at opset {version} takes {allowed}"
            )
    for attr in node.attribute:
        spec = schema.attributes.get(attr.name)
        if spec is None:
            raise ModelLoadError(
                f"{label}: {named} has attribute '{attr.name}', which {node.op_type} at opset {version} "
                f"does not have (it has: {', '.join(sorted(schema.attributes)) or 'none'})"
            )
        if not attr.ref_attr_name and attr.type != int(spec.type.value):
            raise ModelLoadError(
                f"{label}: {named}: attribute '{attr.name}' is {A.AttributeType.Name(attr.type)}, "
                f"{node.op_type} expects {A.AttributeType.Name(int(spec.type.value))}"
            )
    given = {attr.name for attr in node.attribute}
    missing = sorted(name for name, spec in schema.attributes.items() if spec.required and name not in given)
    if missing:
        raise ModelLoadError(f"{label}: {named} lacks required attribute(s) {', '.join(missing)}")
    if node.op_type == "Constant" and len(node.attribute) != 1:
        raise ModelLoadError(
            f"{label}: {named} has {len(node.attribute)} attributes; a Constant holds exactly one"
        )


def _check_single_assignment(graph: onnx.GraphProto, where: str, label: str) -> None:
    """Each name is given a value once in a graph: graph inputs and initializers are unique
    (an initializer may also be listed as an input: IR < 4), and no node output reuses a name."""
    for kind, names in (
        ("input", [i.name for i in graph.input]),
        ("initializer", [t.name for t in graph.initializer]),
    ):
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ModelLoadError(f"{label}: graph {kind} '{name}' appears twice in {where}")
            seen.add(name)
    taken = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    for node in graph.node:
        for name in node.output:
            if not name:
                continue
            if name in taken:
                raise ModelLoadError(
                    f"{label}: node '{node.name}' ({node.op_type}) in {where} writes '{name}', which "
                    "already has a value (names are assigned once)"
                )
            taken.add(name)


def _check_fields(proto: onnx.ModelProto, label: str) -> None:
    stack: list[tuple[Message, str]] = [(proto, "model")]
    while stack:
        message, where = stack.pop()
        if isinstance(message, onnx.TensorProto):
            _check_tensor(message, where, label)
        elif isinstance(message, onnx.AttributeProto):
            _check_attribute_type(message, where, label)
        elif isinstance(message, onnx.GraphProto):
            _check_graph_names(message, where, label)
        for field, value in message.ListFields():
            path = f"{where}.{field.name}"
            if field.type == FieldDescriptor.TYPE_STRING:
                _check_text(value, _repeated(field), path, label)
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                if _repeated(field):
                    stack.extend((item, f"{path}[{i}]{_named(item)}") for i, item in enumerate(value))
                else:
                    stack.append((value, path))


def _repeated(field: FieldDescriptor) -> bool:
    flag = getattr(field, "is_repeated", None)  # protobuf >= 5; older versions have only ``label``
    return bool(flag) if flag is not None else field.label == FieldDescriptor.LABEL_REPEATED


A = onnx.AttributeProto
#: The field that holds each attribute type's value.
_ATTRIBUTE_FIELDS = {
    A.FLOAT: "f", A.INT: "i", A.STRING: "s", A.TENSOR: "t", A.GRAPH: "g", A.SPARSE_TENSOR: "sparse_tensor",
    A.TYPE_PROTO: "tp", A.FLOATS: "floats", A.INTS: "ints", A.STRINGS: "strings", A.TENSORS: "tensors",
    A.GRAPHS: "graphs", A.SPARSE_TENSORS: "sparse_tensors", A.TYPE_PROTOS: "type_protos",
}  # fmt: skip


def _check_attribute_type(attr: onnx.AttributeProto, where: str, label: str) -> None:
    """An attribute must say its type. The one repair made here: a type left unset (old
    exporters) is set from the only value field that is filled."""
    if attr.ref_attr_name:
        return
    filled = [t for t, f in _ATTRIBUTE_FIELDS.items() if _has(attr, f)]
    if attr.type in _ATTRIBUTE_FIELDS:
        other = [_ATTRIBUTE_FIELDS[t] for t in filled if t != attr.type]
        if other:  # onnx's own C++ (the version converter) reads the declared field blindly
            declared = onnx.AttributeProto.AttributeType.Name(attr.type)
            raise ModelLoadError(
                f"{label}: attribute '{attr.name}' at {where} is declared {declared} but holds "
                f"{', '.join(other)}"
            )
        return
    if attr.type == A.UNDEFINED and len(filled) == 1:
        attr.type = filled[0]
        return
    raise ModelLoadError(
        f"{label}: attribute '{attr.name}' at {where} has type {attr.type}, "
        "which is not an ONNX attribute type"
    )


def _has(attr: onnx.AttributeProto, field: str) -> bool:
    value = getattr(attr, field)
    return len(value) > 0 if not isinstance(value, (int, float, bytes, Message)) else attr.HasField(field)


def _named(message: Message) -> str:
    name = getattr(message, "name", "")
    return f"('{name}')" if isinstance(name, str) and name else ""


def _check_text(value: object, repeated: bool, path: str, label: str) -> None:
    # protobuf hands back the bytes of a proto2 string field that is not valid UTF-8
    items = value if repeated else (value,)
    for item in items:  # type: ignore[union-attr]
        if isinstance(item, bytes):
            shown = item[:40].decode("utf-8", "backslashreplace")
            raise ModelLoadError(f"{label}: {path} is not valid UTF-8 text ('{shown}')")


def _check_graph_names(graph: onnx.GraphProto, where: str, label: str) -> None:
    for kind in ("input", "output", "initializer"):
        for i, item in enumerate(getattr(graph, kind)):
            if not item.name:
                raise ModelLoadError(
                    f"{label}: {where}.{kind}[{i}] has no name (every graph {kind} needs one)"
                )
    for item in graph.input:  # what a caller must feed: its element type must be known
        tensor = item.type.tensor_type if item.type.HasField("tensor_type") else None
        if tensor is None:
            continue
        try:
            known = ir.DataType(tensor.elem_type) != ir.DataType.UNDEFINED
        except ValueError:
            known = False
        if not known:
            raise ModelLoadError(
                f"{label}: graph input '{item.name}' of {where} has element type {tensor.elem_type}, "
                "which is not an ONNX tensor type"
            )


def _check_tensor(t: onnx.TensorProto, where: str, label: str) -> None:
    name = f"tensor '{t.name}'" if t.name else f"the tensor at {where}"
    try:
        dtype = ir.DataType(t.data_type)
    except ValueError:
        dtype = ir.DataType.UNDEFINED
    if dtype == ir.DataType.UNDEFINED:
        raise ModelLoadError(
            f"{label}: {name} has data_type {t.data_type}, which is not an ONNX element type"
        )
    if any(d < 0 for d in t.dims):
        raise ModelLoadError(f"{label}: {name} has a negative dimension in dims {list(t.dims)}")
    count = math.prod(int(d) for d in t.dims)  # Python ints: no overflow
    bits = None if dtype == ir.DataType.STRING else dtype.bitwidth
    want_bytes = None if bits is None else -(-count * bits // 8)
    dims = f"{dtype.name.lower()}{list(t.dims)}"
    if t.data_location == T.EXTERNAL:
        _check_external(t, name, dims, want_bytes, label)
        return
    if t.HasField("raw_data"):
        if want_bytes is None:
            raise ModelLoadError(
                f"{label}: {name} is a string tensor with raw_data (strings go in string_data)"
            )
        if len(t.raw_data) != want_bytes:
            raise ModelLoadError(
                f"{label}: {name} ({dims}) needs {want_bytes} bytes of raw_data, it has {len(t.raw_data)}"
            )
        return
    held = {f: len(getattr(t, f)) for f in _DATA_FIELDS if len(getattr(t, f))}
    typed = _TYPED_FIELD.get(t.data_type)
    if typed is None:  # 8-bit floats, 4- and 2-bit types: in int32_data, one or a packed byte per value
        others = [f for f in held if f != "int32_data"]
        if others:
            raise ModelLoadError(
                f"{label}: {name} ({dims}) holds data in {', '.join(others)}, not in int32_data"
            )
        got = held.get("int32_data", 0)
        assert want_bytes is not None
        if got not in (count, want_bytes):
            raise ModelLoadError(
                f"{label}: {name} ({dims}) needs {count} values (or {want_bytes} packed bytes) "
                f"in int32_data, "
                f"it has {got}"
            )
        return
    field, per_element = typed
    got = held.pop(field, 0)
    if held:
        raise ModelLoadError(f"{label}: {name} ({dims}) holds data in {', '.join(held)}, not in {field}")
    if got != count * per_element:
        raise ModelLoadError(
            f"{label}: {name} ({dims}) needs {count * per_element} values in {field}, it has {got}"
        )


#: The keys of a tensor's external_data (the ONNX spec's, and onnx's own basepath).
_EXTERNAL_KEYS = frozenset({"location", "offset", "length", "checksum", "basepath"})


def _check_external(t: onnx.TensorProto, name: str, dims: str, want_bytes: int | None, label: str) -> None:
    for entry in t.external_data:  # read before the walk reaches the entries' own text check
        _check_text(entry.key, False, f"{name}.external_data.key", label)
        _check_text(entry.value, False, f"{name}.external_data.value", label)
    info = {e.key: e.value for e in t.external_data}
    unknown = sorted(set(info) - _EXTERNAL_KEYS)
    if unknown:  # onnx and onnx-ir only warn (on stderr) and ignore it
        shown = unknown[0][:40].encode("unicode_escape").decode()
        known = ", ".join(sorted(_EXTERNAL_KEYS))
        raise ModelLoadError(f"{label}: {name}: external data has key '{shown}', not one of {known}")
    if not info.get("location"):
        raise ModelLoadError(f"{label}: {name} is stored externally but names no location")
    for key in ("offset", "length"):
        if key in info and not (info[key].isascii() and info[key].isdigit() and len(info[key]) < 20):
            raise ModelLoadError(
                f"{label}: {name}: external data {key} '{info[key][:40]}' is not a byte count"
            )
    if want_bytes is None:
        raise ModelLoadError(f"{label}: {name} is a string tensor stored externally (onnxruntime reads none)")
    if "length" in info and int(info["length"]) != want_bytes:
        raise ModelLoadError(
            f"{label}: {name} ({dims}) needs {want_bytes} bytes of external data, "
            f"its length says {info['length']}"
        )


__all__ = ["check_proto"]
