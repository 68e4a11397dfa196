from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import onnx_ir as ir
import pytest

from onnxq import io as onnxq_io
from onnxq.errors import ModelLoadError, OnnxqError
from onnxq.io import load_model, save_model, tensor_bytes, to_proto

MATMUL_TEXT = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[2, 64] x) => (float[2, 32] y) {
    y = MatMul(x, w)
}
"""


@pytest.fixture
def matmul_model() -> onnx.ModelProto:
    model = onnx.parser.parse_model(MATMUL_TEXT)
    w = np.random.default_rng(1).standard_normal((64, 32)).astype(np.float32)
    model.graph.initializer.append(onnx.numpy_helper.from_array(w, "w"))
    onnx.checker.check_model(model)
    return model


def _all_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_load_model_returns_ir_model_when_given_proto_path_or_ir(matmul_model, tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save_model(matmul_model, str(path))
    from_path = load_model(path)
    from_str = load_model(str(path))
    from_proto = load_model(matmul_model)
    assert isinstance(from_path, ir.Model) and isinstance(from_str, ir.Model)
    assert load_model(from_proto) is from_proto
    for model in (from_path, from_str, from_proto):
        assert [n.op_type for n in model.graph] == ["MatMul"]
        np.testing.assert_array_equal(
            model.graph.initializers["w"].const_value.numpy(),
            onnx.numpy_helper.to_array(matmul_model.graph.initializer[0]),
        )


def test_load_model_raises_when_file_missing(tmp_path):
    with pytest.raises(ModelLoadError, match=r"model file '.*nope\.onnx' does not exist"):
        load_model(tmp_path / "nope.onnx")


def test_load_model_names_what_in_error(tmp_path):
    with pytest.raises(ModelLoadError, match=r"^calibration model file .* does not exist$"):
        load_model(tmp_path / "nope.onnx", what="calibration model")


def test_load_model_raises_when_not_onnx(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("this is a text file, not a protobuf\n" * 20)
    with pytest.raises(ModelLoadError, match=r"notes\.onnx' is not a valid ONNX model"):
        load_model(path)


def test_load_model_raises_when_file_empty(tmp_path):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="not a valid ONNX model"):
        load_model(path)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, -1])
def test_load_model_raises_when_truncated(matmul_model, tmp_path, keep):
    data = matmul_model.SerializeToString()
    cut = len(data) - 1 if keep == -1 else int(len(data) * keep)
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[:cut])
    with pytest.raises(ModelLoadError, match=r"cut\.onnx' is not a valid ONNX model") as info:
        load_model(path)
    assert "\n" not in str(info.value)


def test_load_model_raises_when_external_data_missing(matmul_model, tmp_path):
    path = tmp_path / "ext.onnx"
    save_model(matmul_model, path, external_data=True)
    (tmp_path / "ext.onnx.data").unlink()
    with pytest.raises(
        ModelLoadError, match=r"external data file 'ext\.onnx\.data' \(for tensor 'w'\) not found"
    ):
        load_model(path)


def test_load_model_raises_when_external_data_truncated(matmul_model, tmp_path):
    path = tmp_path / "ext.onnx"
    save_model(matmul_model, path, external_data=True)
    data = tmp_path / "ext.onnx.data"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(
        ModelLoadError, match=r"'ext\.onnx\.data' is truncated: tensor 'w' needs bytes 0\.\.8192"
    ):
        load_model(path)


@pytest.mark.parametrize("location", ["../outside.data", "/abs/outside.data"])
def test_load_model_raises_when_external_data_escapes_model_dir(matmul_model, tmp_path, location):
    path = tmp_path / "ext.onnx"
    save_model(matmul_model, path, external_data=True)
    proto = onnx.load(str(path), load_external_data=False)
    for entry in proto.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    onnx.save_model(proto, str(path))
    with pytest.raises(ModelLoadError, match=r"must be a file inside the model's directory"):
        load_model(path)


def test_load_model_refuses_an_external_data_location_with_a_nul_character(matmul_model, tmp_path):
    path = tmp_path / "ext.onnx"
    save_model(matmul_model, path, external_data=True)
    proto = onnx.load(str(path), load_external_data=False)
    for entry in proto.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "ext.onnx\x00.data"  # os.path raised "embedded null byte"
    onnx.save_model(proto, str(path))
    with pytest.raises(ModelLoadError, match=r"location 'ext\.onnx\\x00\.data' \(for tensor 'w'\) holds a"):
        load_model(path)


def test_external_data_through_a_link_out_of_the_model_dir_is_refused_unread(
    matmul_model, tmp_path, monkeypatch
):
    models = tmp_path / "models"
    models.mkdir()
    save_model(matmul_model, models / "ext.onnx", external_data=True)
    outside = tmp_path / "secret.data"
    (models / "ext.onnx.data").rename(outside)
    os.symlink(outside, models / "ext.onnx.data")
    looked_at: list[str] = []
    real_stat = Path.stat

    def spy(self, *args, **kwargs):
        looked_at.append(str(self))
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", spy)
    with pytest.raises(
        ModelLoadError, match=r"'ext\.onnx\.data' .*\(no absolute path, '\.\.' or link leading out"
    ) as info:
        load_model(models / "ext.onnx")
    assert "\n" not in str(info.value) and str(outside) not in str(info.value)
    monkeypatch.undo()
    assert not any(p.endswith("secret.data") for p in looked_at)  # its size was never asked for


def test_external_data_through_a_link_inside_the_model_dir_is_read(matmul_model, tmp_path):
    save_model(matmul_model, tmp_path / "ext.onnx", external_data=True)
    (tmp_path / "ext.onnx.data").rename(tmp_path / "real.data")
    os.symlink("real.data", tmp_path / "ext.onnx.data")
    model = load_model(tmp_path / "ext.onnx")
    assert model.graph.initializers["w"].const_value.numpy().shape == (64, 32)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b'{"a": 1, "a": 2}', "key 'a' appears twice in one object"),
        (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
        (b'{"version": ' + b"9" * 5000 + b"}", "not valid JSON (Exceeds the limit"),
        (b'\xff\xfe{\x00"\x00', "not UTF-8 text) at byte 0 (0xff)"),
        (b'{"a": tru', "Expecting value"),
    ],
)
def test_read_json_file_gives_one_line(tmp_path, content, needle):
    path = tmp_path / "c.json"
    path.write_bytes(content)
    with pytest.raises(OnnxqError, match=None) as info:
        onnxq_io.read_json_file(path, "config", OnnxqError, 1 << 20)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_read_json_file_accepts_a_byte_order_mark(tmp_path):
    path = tmp_path / "c.json"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}')
    assert onnxq_io.read_json_file(path, "config", OnnxqError, 100) == {"a": 1}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_read_json_file_refuses_a_fifo_without_blocking(tmp_path):
    fifo = tmp_path / "c.json"
    os.mkfifo(fifo)
    with pytest.raises(OnnxqError, match="not a regular file"):
        onnxq_io.read_json_file(fifo, "config", OnnxqError, 100)


def test_load_model_reads_external_data_from_any_cwd(matmul_model, tmp_path, monkeypatch, run_ort):
    models = tmp_path / "models"
    models.mkdir()
    save_model(matmul_model, models / "m.onnx", external_data=True)
    monkeypatch.chdir(models)
    model = load_model("m.onnx")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    x = np.random.default_rng(0).standard_normal((2, 64)).astype(np.float32)
    (expected,) = run_ort(matmul_model, {"x": x})
    (got,) = run_ort(model, {"x": x})
    np.testing.assert_array_equal(got, expected)


def test_save_model_writes_external_data_beside_model(matmul_model, tmp_path):
    out = tmp_path / "out.onnx"
    assert save_model(matmul_model, out, external_data=True) == out
    assert _all_files(tmp_path) == ["out.onnx", "out.onnx.data"]
    proto = onnx.load(str(out), load_external_data=False)
    (w,) = proto.graph.initializer
    assert w.data_location == onnx.TensorProto.EXTERNAL
    location = {e.key: e.value for e in w.external_data}["location"]
    assert location == "out.onnx.data"
    assert (tmp_path / "out.onnx.data").stat().st_size == 64 * 32 * 4


def test_save_model_keeps_tensors_inline_by_default(matmul_model, tmp_path):
    out = tmp_path / "out.onnx"
    save_model(load_model(matmul_model), out)
    assert _all_files(tmp_path) == ["out.onnx"]
    proto = onnx.load(str(out), load_external_data=False)
    assert proto.graph.initializer[0].data_location == onnx.TensorProto.DEFAULT


def test_save_model_uses_external_data_automatically_when_large(matmul_model, tmp_path, monkeypatch):
    monkeypatch.setattr(onnxq_io, "AUTO_EXTERNAL_BYTES", 1000)
    save_model(matmul_model, tmp_path / "big.onnx")
    assert _all_files(tmp_path) == ["big.onnx", "big.onnx.data"]


def test_save_model_refuses_inline_when_too_large(matmul_model, tmp_path, monkeypatch):
    monkeypatch.setattr(onnxq_io, "AUTO_EXTERNAL_BYTES", 1000)
    with pytest.raises(OnnxqError, match="exceeds the 2 GB protobuf limit"):
        save_model(matmul_model, tmp_path / "big.onnx", external_data=False)
    assert _all_files(tmp_path) == []


def test_save_model_raises_when_directory_missing(matmul_model, tmp_path):
    with pytest.raises(OnnxqError, match="does not exist"):
        save_model(matmul_model, tmp_path / "no" / "m.onnx")


@pytest.mark.parametrize("external", [False, True])
def test_save_model_leaves_nothing_when_write_fails(matmul_model, tmp_path, monkeypatch, external):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"previous")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(onnx, "save_model", boom)
    monkeypatch.setattr(ir, "save", boom)
    with pytest.raises(OnnxqError, match=r"^cannot save model to '.*m\.onnx': disk full$"):
        save_model(matmul_model, target, external_data=external)
    assert _all_files(tmp_path) == ["m.onnx"]
    assert target.read_bytes() == b"previous"


def test_save_model_overwrites_its_own_external_data(matmul_model, tmp_path, run_ort):
    path = tmp_path / "m.onnx"
    save_model(matmul_model, path, external_data=True)
    model = load_model(path)
    save_model(model, path, external_data=True)
    x = np.ones((2, 64), np.float32)
    (expected,) = run_ort(matmul_model, {"x": x})
    (got,) = run_ort(load_model(path), {"x": x})
    np.testing.assert_array_equal(got, expected)
    assert _all_files(tmp_path) == ["m.onnx", "m.onnx.data"]


def test_to_proto_inlines_external_tensors_without_changing_model(matmul_model, tmp_path):
    save_model(matmul_model, tmp_path / "m.onnx", external_data=True)
    model = load_model(tmp_path / "m.onnx")
    proto = to_proto(model)
    (w,) = proto.graph.initializer
    assert w.data_location == onnx.TensorProto.DEFAULT
    np.testing.assert_array_equal(
        onnx.numpy_helper.to_array(w), onnx.numpy_helper.to_array(matmul_model.graph.initializer[0])
    )
    assert isinstance(model.graph.initializers["w"].const_value, ir.ExternalTensor)


def test_tensor_bytes_counts_initializers_and_constant_attributes(matmul_model):
    assert tensor_bytes(load_model(matmul_model)) == 64 * 32 * 4
    matmul_model.graph.node.append(
        onnx.helper.make_node(
            "Constant", [], ["c"], value=onnx.numpy_helper.from_array(np.zeros(10, np.float32))
        )
    )
    assert tensor_bytes(load_model(matmul_model)) == 64 * 32 * 4 + 40


def test_save_model_raises_onnxq_error_when_directory_not_writable(matmul_model, tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(onnxq_io.tempfile, "mkdtemp", denied)
    with pytest.raises(OnnxqError, match=r"cannot save model to '.*m\.onnx': .*Permission denied"):
        save_model(matmul_model, tmp_path / "m.onnx")
    assert _all_files(tmp_path) == []


def test_save_model_accepts_proto_and_path_str(matmul_model, tmp_path):
    out = os.fspath(tmp_path / "s.onnx")
    save_model(matmul_model, out)
    reloaded = onnx.load(out)
    onnx.checker.check_model(reloaded)
    assert [n.op_type for n in reloaded.graph.node] == ["MatMul"]


def test_save_model_round_trips_external_data_after_a_rewrite(matmul_model, tmp_path, run_ort):
    from onnxq.graph import NameAuthority, new_initializer

    path = tmp_path / "m.onnx"
    save_model(matmul_model, path, external_data=True)
    model = load_model(path)
    names = NameAuthority(model.graph)
    bias = new_initializer(model.graph, np.arange(32, dtype=np.float32), names, "bias")
    out = model.graph.outputs[0]
    add_out = ir.Value(name=names.value("y_biased"))
    model.graph.append(ir.Node("", "Add", [out, bias], outputs=[add_out], name="add_bias"))
    model.graph.outputs[0] = add_out
    save_model(model, path, external_data=True)
    reloaded = load_model(path)
    assert isinstance(reloaded.graph.initializers["w"].const_value, ir.ExternalTensor)
    x = np.ones((2, 64), np.float32)
    (expected,) = run_ort(matmul_model, {"x": x})
    (got,) = run_ort(reloaded, {"x": x})
    np.testing.assert_allclose(got, expected + np.arange(32, dtype=np.float32), rtol=1e-6)
    assert _all_files(tmp_path) == ["m.onnx", "m.onnx.data"]
