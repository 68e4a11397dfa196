"""End-to-end proof on a zoo of untrained torch modules: both exporters, two opsets, two presets.

Each module (random weights, no training) is exported with both torch exporters at two opsets each
(the ``torch_exporter`` fixture), quantized by ``onnxq.prepare`` / ``calibrate`` / ``convert`` on
:data:`CALIB_BATCHES` random batches with the x86 and the qnnpack presets, and run by onnxruntime
with graph optimisations on and off. For every case:

1. ``convert`` succeeds and the QDQ model passes ``onnx.checker``;
2. the ops the model is about are quantized (per the report), every Conv / ConvTranspose / Gemm /
   MatMul reads only dequantized inputs, a constant weight is stored as int8 (per output channel
   under x86, per tensor under qnnpack for Conv/ConvTranspose) and a bias as int32,
   and the ops that must stay float (LSTM/GRU) read no dequantized tensor;
3. on :data:`HELD_OUT_BATCHES` held-out random batches (a different seed), every output has a
   signal-to-quantization-noise ratio ``10 log10(sum(y^2) / sum((y - y_q)^2))`` of at least the
   case's ``min_sqnr_db``.

The bounds: an 8-bit uniform quantizer over a +-4 sigma range has an SQNR of
``10 log10(12 * 256**2 / 64) = 41 dB`` on Gaussian data (7-bit under x86's reduce_range: 35 dB);
the noise of stacked quantized layers adds up and held-out samples may clip, so the measured worst
case over exporters, presets and onnxruntime levels is 26 dB (LSTM, qnnpack) to 48 dB (Conv1d).
Each case's bound is its measured worst minus 6 dB (4x the noise power; everything is seeded, so
only library and runtime changes move it) and never below 20 dB (noise rms at 10% of the signal).
A bound that loose would miss local bugs: a 30% error in the first U-Net Conv's weight scales
gives 19 dB and a dropped bias 24 dB, both caught by the U-Net's 33 dB.
The dynamic-batch model is calibrated at batch 3 and evaluated at batch 7.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import pytest

import onnxq

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning",
                                        "ignore::UserWarning")

PRESETS = ("x86", "qnnpack")
CALIB_BATCHES = 32
HELD_OUT_BATCHES = 6
ANCHORS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
SHAPE_REASON = "is int64"  # shape arithmetic (Shape -> Gather -> Concat) stays float, rightly


class Encoder(nn.Module):
    """Pre-LN transformer encoder block with hand-written two-head attention on (B, T, D)."""

    def __init__(self, d: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.heads, self.dh = heads, d // heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(d, 2 * d), nn.Linear(2 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        h = self.ln1(x)

        def split(y):
            return y.reshape(b, t, self.heads, self.dh).transpose(1, 2)

        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        att = torch.softmax(q @ k.transpose(-1, -2) / self.dh**0.5, dim=-1)
        x = x + self.o((att @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class SqueezeExcite(nn.Module):
    """Conv + ReLU, then channel gating: GlobalAveragePool, 1x1 Conv, ReLU, 1x1 Conv, Sigmoid, Mul."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.squeeze, self.excite = nn.Conv2d(c, 4, 1), nn.Conv2d(4, c, 1)

    def forward(self, x):
        x = F.relu(self.conv(x))
        gate = torch.sigmoid(self.excite(F.relu(self.squeeze(F.adaptive_avg_pool2d(x, 1)))))
        return x * gate


class TinyUNet(nn.Module):
    """Encoder-decoder with MaxPool, ConvTranspose, nearest Resize and two skip Concats."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1, self.enc2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1)
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.dec = nn.Conv2d(16, 8, 3, padding=1)
        self.head = nn.Conv2d(16, 2, 1)

    def forward(self, x):
        a = F.relu(self.enc1(x))
        b = F.relu(self.enc2(F.max_pool2d(a, 2)))
        c = F.relu(self.dec(torch.cat([self.up(b), a], 1)))
        coarse = F.interpolate(F.max_pool2d(c, 2), scale_factor=2.0, mode="nearest")
        return self.head(torch.cat([c, coarse], 1))


class DepthwiseSeparable(nn.Module):
    """Stem Conv, depthwise 3x3 Conv, pointwise 1x1 Conv, each followed by Hardswish."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.dw, self.pw = nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 16, 1)

    def forward(self, x):
        return F.hardswish(self.pw(F.hardswish(self.dw(F.hardswish(self.stem(x))))))


class TwoInTwoOut(nn.Module):
    """Two inputs merged by an Add of two Linear + ReLU branches; a linear head and a Tanh head."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(8, 16), nn.Linear(4, 16)
        self.h1, self.h2 = nn.Linear(16, 3), nn.Linear(16, 5)

    def forward(self, x, y):
        z = F.relu(self.a(x)) + F.relu(self.b(y))
        return self.h1(z), torch.tanh(self.h2(z))


class ConvClassifier(nn.Module):
    """Conv + ReLU, flatten, Linear: exported with a dynamic batch axis."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        return self.fc(torch.flatten(F.relu(self.conv(x)), 1))


class Recurrent(nn.Module):
    """LSTM or GRU over (B, T, 6), the last step through a Linear head."""

    def __init__(self, cell: str) -> None:
        super().__init__()
        self.rnn = (nn.LSTM if cell == "LSTM" else nn.GRU)(6, 16, batch_first=True)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.head(y[:, -1])


class Conv1dNet(nn.Module):
    """Rank-3 convolutions (plain and grouped) on (B, C, L), mean over L, Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv1d(4, 8, 3, padding=1), nn.Conv1d(8, 8, 3, padding=1, groups=2)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(F.relu(self.c2(F.relu(self.c1(x)))).mean(-1))


@dataclass(frozen=True)
class ZooCase:
    """One module, its example input shapes and what the quantized model must show.

    ``quantized``: op types every instance of which is int8 (shape arithmetic on int64 aside);
    ``stays_float``: op types that must stay float and read no dequantized tensor;
    ``dynamic_batch``: export with a symbolic batch axis and evaluate at another batch size;
    ``min_sqnr_db``: the bound on every output's SQNR (see the module docstring).
    """

    make: Callable[[], Any]
    shapes: tuple[tuple[int, ...], ...]
    quantized: tuple[str, ...]
    min_sqnr_db: float = 20.0
    stays_float: tuple[str, ...] = ()
    dynamic_batch: bool = False


CASES: dict[str, ZooCase] = {  # measured worst SQNR in the comments
    "encoder": ZooCase(Encoder, ((2, 6, 16),), ("MatMul", "Softmax"), 24.0),  # 30.5
    "squeeze_excite": ZooCase(SqueezeExcite, ((2, 3, 8, 8),),
                              ("Conv", "GlobalAveragePool", "Sigmoid", "Mul"), 26.0),  # 32.5
    "unet": ZooCase(TinyUNet, ((2, 3, 8, 8),),
                    ("Conv", "ConvTranspose", "MaxPool", "Concat", "Resize"), 33.0),  # 39.3
    "depthwise_hardswish": ZooCase(DepthwiseSeparable, ((2, 3, 8, 8),), ("Conv",), 28.0),  # 34.2
    "two_in_two_out": ZooCase(TwoInTwoOut, ((3, 8), (3, 4)), ("Gemm", "Add", "Tanh"), 25.0),  # 31.0
    "dynamic_batch": ZooCase(ConvClassifier, ((3, 3, 6, 6),), ("Conv", "Gemm"), 26.0,  # 32.3
                             dynamic_batch=True),
    "lstm": ZooCase(lambda: Recurrent("LSTM"), ((2, 5, 6),), ("Gemm",), 20.0,  # 26.2
                    stays_float=("LSTM",)),
    "gru": ZooCase(lambda: Recurrent("GRU"), ((2, 5, 6),), ("Gemm",), 31.0, stays_float=("GRU",)),  # 37.3
    "conv1d": ZooCase(Conv1dNet, ((2, 4, 16),), ("Conv", "Gemm"), 42.0),  # 48.4
}


def _export(export_torch, case: ZooCase, exporter: str, opset: int) -> onnx.ModelProto:
    torch.manual_seed(0)
    examples = tuple(torch.randn(*s) for s in case.shapes)
    options: dict[str, Any] = {}
    if case.dynamic_batch and exporter == "dynamo":
        options["dynamic_shapes"] = tuple({0: torch.export.Dim("batch")} for _ in examples)
    elif case.dynamic_batch:
        names = [f"input_{i}" for i in range(len(examples))]
        options.update(input_names=names, dynamic_axes={n: {0: "batch"} for n in names})
    return export_torch(case.make(), examples, exporter, opset, **options)


def _batches(model: onnx.ModelProto, case: ZooCase, n: int, seed: int, batch: int | None = None
             ) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    names = [i.name for i in model.graph.input]
    return [
        {name: rng.standard_normal((batch or s[0], *s[1:])).astype(np.float32)
         for name, s in zip(names, case.shapes, strict=True)}
        for _ in range(n)
    ]


def _sqnr_db(reference: np.ndarray, got: np.ndarray) -> float:
    noise = float(np.sum((reference.astype(np.float64) - got) ** 2))
    return 10.0 * np.log10(float(np.sum(reference.astype(np.float64) ** 2)) / max(noise, 1e-30))


def _assert_structure(
    q: onnx.ModelProto, report: Any, case: ZooCase, label: str, per_channel: bool
) -> None:
    for op in case.quantized:
        entries = [n for n in report.nodes if n.op_type == op]
        assert entries, f"{label}: no {op} in the model"
        wrong = [(n.name, n.reason) for n in entries
                 if not n.quantized and SHAPE_REASON not in (n.reason or "")]
        assert not wrong, f"{label}: {op} left in float: {wrong}"
        assert any(n.quantized for n in entries), f"{label}: no {op} quantized"
    producers = {out: node for node in q.graph.node for out in node.output}
    initializers = {t.name: t for t in q.graph.initializer}
    anchors = [n for n in q.graph.node if n.op_type in ANCHORS]
    assert anchors, f"{label}: no Conv/Gemm/MatMul"
    for node in anchors:
        for slot, stored_type in ((0, None), (1, onnx.TensorProto.INT8), (2, onnx.TensorProto.INT32)):
            if slot >= len(node.input) or not node.input[slot]:
                continue
            dq = producers.get(node.input[slot])
            assert dq is not None and dq.op_type == "DequantizeLinear", (
                f"{label}: {node.op_type} {node.name!r} input {slot} is not dequantized")
            stored = initializers.get(dq.input[0])
            if stored is not None and stored_type is not None:
                assert stored.data_type == stored_type, (
                    f"{label}: {node.op_type} {node.name!r} input {slot} stored as "
                    f"{onnx.TensorProto.DataType.Name(stored.data_type)}")
            if stored is not None and slot == 1 and node.op_type in ("Conv", "ConvTranspose"):
                scales = int(np.prod(initializers[dq.input[1]].dims))  # x86: per channel; qnnpack: one
                channels = stored.dims[0] if node.op_type == "Conv" else stored.dims[1]
                expected = channels if per_channel else 1
                assert scales == expected, f"{label}: {node.name!r} has {scales} weight scales"
    for op in case.stays_float:
        nodes = [n for n in q.graph.node if n.op_type == op]
        assert nodes and all(not n.quantized for n in report.nodes if n.op_type == op), f"{label}: {op}"
        for node in nodes:
            fed = [producers[i].op_type for i in node.input if i in producers]
            assert "DequantizeLinear" not in fed, f"{label}: float {op} {node.name!r} reads a DQ tensor"


@pytest.mark.parametrize("name", list(CASES))
def test_zoo_model_quantizes_and_stays_close_to_fp32(
    name, export_torch, torch_exporter, run_ort, caplog
) -> None:
    case = CASES[name]
    exporter, opset = torch_exporter
    fp32 = _export(export_torch, case, exporter, opset)
    calibration = _batches(fp32, case, CALIB_BATCHES, seed=1)
    held_out = _batches(fp32, case, HELD_OUT_BATCHES, seed=2, batch=7 if case.dynamic_batch else None)
    references = {opt: [run_ort(fp32, feeds, opt) for feeds in held_out] for opt in (True, False)}
    for preset in PRESETS:
        label = f"{name}/{exporter}-{opset}/{preset}"
        prepared = onnxq.prepare(fp32, preset)
        prepared.calibrate(calibration, progress=False)
        with caplog.at_level(logging.WARNING, logger="onnxq"):
            q = prepared.convert()
        assert not [r for r in caplog.records if r.name.startswith("onnxq")], f"{label}: {caplog.text}"
        onnx.checker.check_model(q, full_check=True)
        assert [o.name for o in q.graph.output] == [o.name for o in fp32.graph.output]
        if case.dynamic_batch:
            dims = [i.type.tensor_type.shape.dim[0] for i in q.graph.input]
            assert all(d.dim_param and not d.dim_value for d in dims), f"{label}: batch axis lost"
        _assert_structure(q, prepared.report, case, label, per_channel=preset == "x86")
        for opt in (True, False):
            got = [run_ort(q, feeds, opt) for feeds in held_out]
            for k in range(len(fp32.graph.output)):
                ref = np.concatenate([r[k] for r in references[opt]])
                out = np.concatenate([g[k] for g in got])
                assert out.shape == ref.shape
                sqnr = _sqnr_db(ref, out)
                assert sqnr >= case.min_sqnr_db, f"{label} (ort opt {opt}) output {k}: SQNR {sqnr:.1f} dB"


#: Output SQNR gained by ``float_outputs=True`` on the LSTM + Linear head, per preset: at least
#: 10 dB (x86, measured 34.7 -> 47.1 dB) and 20 dB (qnnpack, 26.2 -> 51.4 dB), torchscript opset 17.
FLOAT_OUTPUT_GAIN_DB = {"x86": 10.0, "qnnpack": 20.0}


@pytest.mark.parametrize("preset", PRESETS)
def test_float_outputs_keep_the_lstm_heads_output_float_and_gain_sqnr(export_torch, run_ort, preset) -> None:
    from onnxq.lower import lower

    case = CASES["lstm"]
    fp32 = _export(export_torch, case, "torchscript", 17)
    calibration = _batches(fp32, case, CALIB_BATCHES, seed=1)
    held_out = _batches(fp32, case, HELD_OUT_BATCHES, seed=2)
    ref = np.concatenate([run_ort(fp32, feeds, False)[0] for feeds in held_out])
    rounded = onnxq.quantize_static(fp32, calibration, preset, progress=False)
    kept = onnxq.quantize_static(fp32, calibration, preset, progress=False, float_outputs=True)
    producers = {out: node for node in kept.graph.node for out in node.output}
    gemm = producers[kept.graph.output[0].name]
    assert gemm.op_type == "Gemm", f"{preset}: the output is made by {gemm.op_type}"
    assert [producers[i].op_type for i in gemm.input] == ["DequantizeLinear"] * 3  # input, weight, bias
    stored = {t.name: t.data_type for t in kept.graph.initializer}
    assert [stored.get(producers[i].input[0]) for i in gemm.input[1:]] == [
        onnx.TensorProto.INT8, onnx.TensorProto.INT32]  # fmt: skip
    for opt in (True, False):
        sqnr = {name: _sqnr_db(ref, np.concatenate([run_ort(m, feeds, opt)[0] for feeds in held_out]))
                for name, m in (("rounded", rounded), ("kept", kept))}  # fmt: skip
        assert sqnr["kept"] >= sqnr["rounded"] + FLOAT_OUTPUT_GAIN_DB[preset], f"{preset} opt {opt}: {sqnr}"
    lowering = lower(kept)  # the last Gemm stays QDQ, and the notes say why
    assert any("float graph output" in note and gemm.name in note for note in lowering.notes), lowering.notes
