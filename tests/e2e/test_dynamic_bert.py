"""Dynamic quantization of a small BERT-style encoder exported with the dynamo exporter.

The model is written the way BERT implementations write it, not with ``nn.TransformerEncoder``:
token, position and segment embeddings (three ``Gather``s on constant tables) summed and
LayerNorm-ed; per layer separate query/key/value ``nn.Linear``s, heads split with
``view``/``transpose``, scores scaled and masked with an additive ``(1 - mask) * -1e4`` from the
attention mask input, softmax, the context merged back, an output projection, residual and
LayerNorm, then a GELU feed-forward block; a tanh pooler on the first token and a classifier.
Inputs are ``input_ids`` and ``attention_mask`` (int64, batch and sequence dynamic); the batches
below are padded, so the mask matters.

Its weights are random (seeded): there are no labels, so the bounds are the issue's for unlabeled
models, in every format (``qdq``, ``onnxruntime``, ``onnxq``) on stock onnxruntime:

- the logits' cosine with fp32 >= 0.995 and so are the pooled hidden states';
- the file <= 0.30x the fp32 file (embedding tables int8 behind DequantizeLinear, every Linear an
  integer matmul);
- in the ``onnxq`` format every Linear is an ``ai.onnxq.DynamicMatMul`` and the model's outputs
  are the bytes of the ``qdq`` format computed exactly (its uint8 twin where this CPU's u8 x s8
  kernels saturate), whose integer matmuls are the numpy reference's.
"""

from __future__ import annotations

import collections
import math

import numpy as np
import onnx
import pytest

import onnxq
from onnxq.passes.uint8_twin import exact_on_onnxruntime
from onnxq.runtime import make_session, ort_u8s8_saturates

torch = pytest.importorskip("torch")
nn = torch.nn

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning"
)

VOCAB, HIDDEN, HEADS, LAYERS, MAX_POSITIONS, CLASSES = 2000, 128, 4, 2, 64, 3
BATCH, SEQUENCE = 4, 24
MIN_COSINE = 0.995
MAX_SIZE_RATIO = 0.30
#: As in test_dynamic_sequence_models.py: int8 weights, or their uint8 twin on CPUs whose
#: onnxruntime u8 x s8 kernels saturate (the onnxq format's kernels are exact everywhere).
WEIGHT_DTYPE = "uint8" if ort_u8s8_saturates() else "int8"


class SelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.query, self.key, self.value = (nn.Linear(HIDDEN, HIDDEN) for _ in range(3))
        self.output = nn.Linear(HIDDEN, HIDDEN)
        self.norm = nn.LayerNorm(HIDDEN, eps=1e-12)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, HEADS, HIDDEN // HEADS).transpose(1, 2)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self.heads(self.query(x)), self.heads(self.key(x)), self.heads(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(HIDDEN // HEADS) + additive_mask
        context = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(x.shape)
        return self.norm(x + self.output(context))


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = SelfAttention()
        self.intermediate = nn.Linear(HIDDEN, 4 * HIDDEN)
        self.output = nn.Linear(4 * HIDDEN, HIDDEN)
        self.norm = nn.LayerNorm(HIDDEN, eps=1e-12)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        x = self.attention(x, additive_mask)
        return self.norm(x + self.output(nn.functional.gelu(self.intermediate(x))))


class MiniBert(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.words = nn.Embedding(VOCAB, HIDDEN)
        self.positions = nn.Embedding(MAX_POSITIONS, HIDDEN)
        self.segments = nn.Embedding(2, HIDDEN)
        self.norm = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))
        self.pooler = nn.Linear(HIDDEN, HIDDEN)
        self.classifier = nn.Linear(HIDDEN, CLASSES)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        x = self.words(input_ids) + self.positions(positions) + self.segments(torch.zeros_like(input_ids))
        x = self.norm(x)
        additive_mask = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
        for layer in self.layers:
            x = layer(x, additive_mask)
        pooled = torch.tanh(self.pooler(x[:, 0]))
        return self.classifier(pooled), pooled


def _inputs(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCAB, size=(BATCH, SEQUENCE), dtype=np.int64)
    lengths = rng.integers(SEQUENCE // 3, SEQUENCE + 1, size=BATCH)
    mask = (np.arange(SEQUENCE)[None, :] < lengths[:, None]).astype(np.int64)
    return {"input_ids": ids * mask, "attention_mask": mask}


@pytest.fixture(scope="module")
def bert() -> onnx.ModelProto:
    torch.manual_seed(0)
    module = MiniBert().eval()
    example = {k: torch.from_numpy(v) for k, v in _inputs(0).items()}
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence", max=MAX_POSITIONS)
    with torch.no_grad():
        program = torch.onnx.export(
            module, (example["input_ids"], example["attention_mask"]), dynamo=True, opset_version=18,
            input_names=["input_ids", "attention_mask"], output_names=["logits", "pooled"],
            dynamic_shapes={"input_ids": {0: batch, 1: sequence}, "attention_mask": {0: batch, 1: sequence}},
            verbose=False,
        )  # fmt: skip
    return program.model_proto


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("fmt", ["qdq", "onnxruntime", "onnxq"])
def test_dynamic_bert_keeps_its_outputs_and_shrinks(bert, fmt) -> None:
    weight_dtype = "int8" if fmt == "onnxq" else WEIGHT_DTYPE
    conversion = onnxq.convert_dynamic(bert, format=fmt, weight_dtype=weight_dtype)
    feeds = _inputs(1)
    feeds_other_length = {k: v[:, : SEQUENCE - 7] for k, v in _inputs(2).items()}  # dynamic axes
    for inputs in (feeds, feeds_other_length):
        fp32 = make_session(bert, threads=1).run(None, inputs)
        quantized = make_session(conversion.model, threads=1).run(None, inputs)
        for name, want, got in zip(("logits", "pooled"), fp32, quantized, strict=True):
            assert got.shape == want.shape
            cosine = _cosine(want, got)
            print(f"bert {fmt} {name} {inputs['input_ids'].shape}: cosine {cosine:.5f}")
            assert cosine >= MIN_COSINE, (name, cosine)
    ratio = conversion.model.ByteSize() / bert.ByteSize()
    print(f"bert {fmt}: size {ratio:.3f}x")
    assert ratio <= MAX_SIZE_RATIO

    planned = [n for n in conversion.report.nodes if n.quantized and n.fused_into is None]
    kinds = collections.Counter(n.kind for n in planned)
    linears = LAYERS * 6 + 2
    assert kinds["dynamic_matmul"] == linears, kinds
    assert kinds["weight_only"] >= 2, kinds  # the word and position tables (at least)
    ops = collections.Counter(n.op_type for n in conversion.model.graph.node)
    float_tables = {
        t.name for t in conversion.model.graph.initializer
        if t.data_type == onnx.TensorProto.FLOAT and np.prod(t.dims) >= HIDDEN * HIDDEN
    }  # fmt: skip
    assert not float_tables, f"large float weights left: {sorted(float_tables)}"
    if fmt == "onnxruntime":
        assert ops["DynamicQuantizeMatMul"] == linears and ops["MatMulInteger"] == 0
    elif fmt == "onnxq":
        assert ops["DynamicMatMul"] == linears and ops["MatMulInteger"] == 0
        qdq = onnxq.convert_dynamic(bert, format="qdq").model
        ours = make_session(conversion.model, threads=1, optimize=False).run(None, feeds)
        exact = make_session(exact_on_onnxruntime(qdq), threads=1, optimize=False).run(None, feeds)
        for got, want in zip(ours, exact, strict=True):
            np.testing.assert_array_equal(got, want)
    else:
        assert ops["MatMulInteger"] == linears and not any(n.domain for n in conversion.model.graph.node)
