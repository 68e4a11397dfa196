"""A corpus that looks like the models users bring: architectures people deploy, exported by torch,
and rewritten the way other exporters write graphs.

Architectures (small widths, random weights with non-trivial BatchNorm statistics):

- ``resnet50``: bottleneck blocks (1x1 / 3x3 / 1x1, projection shortcuts), BN, ReLU;
- ``mobilenetv3``: inverted residuals with depthwise convs, HardSwish, squeeze-excite with
  HardSigmoid;
- ``efficientnet``: MBConv blocks with SiLU and a Sigmoid squeeze-excite;
- ``yolo``: a small backbone, a channel Split, a Concat, nearest Resize up-sampling, two heads
  with a Sigmoid output (objectness: small probabilities);
- ``crnn``: a text recogniser: convs, then a bidirectional LSTM over the width, a Linear head;
- ``bert``: token embeddings + two transformer encoder layers + a pooler.

Rewrites of an exported ONNX model, as other exporters write it:

- :func:`minus_one_dims`: dynamic dims written ``dim_value: -1`` (PaddlePaddle);
- :func:`weights_as_constants`: every initializer moved into a ``Constant`` node;
- :func:`nhwc_input`: the input in NHWC with a ``Transpose`` to NCHW in front (tf2onnx);
- ``old_opset`` (an export option): TorchScript at opset 11 with initializers as graph inputs.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from torch import nn


def _bn_stats(module: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
    return module.eval()


def _conv_bn(cin: int, cout: int, k: int, s: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]


class Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn(cin, mid, 1),
            nn.ReLU(),
            *_conv_bn(mid, mid, 3, stride),
            nn.ReLU(),
            *_conv_bn(mid, cout, 1),
        )
        self.short = (
            nn.Sequential(*_conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.short(x))


class ResNet50ish(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn(3, 16, 3, 2), nn.ReLU())
        self.stages = nn.Sequential(
            Bottleneck(16, 8, 32, 1),
            Bottleneck(32, 8, 32, 1),
            Bottleneck(32, 16, 64, 2),
            Bottleneck(64, 32, 128, 2),
        )
        self.fc = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.stages(self.stem(x)).mean((2, 3)))


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, gate: nn.Module) -> None:
        super().__init__()
        self.fc1, self.fc2, self.gate = nn.Conv2d(c, max(4, c // 4), 1), nn.Conv2d(max(4, c // 4), c, 1), gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(torch.relu(self.fc1(nn.functional.adaptive_avg_pool2d(x, 1)))))


class InvertedResidual(nn.Module):
    def __init__(
        self, cin: int, exp: int, cout: int, stride: int, act: type[nn.Module], gate: type[nn.Module]
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn(cin, exp, 1), act(), *_conv_bn(exp, exp, 3, stride, groups=exp), act(),
            SqueezeExcite(exp, gate()), *_conv_bn(exp, cout, 1),
        )  # fmt: skip
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class MobileNetV3ish(nn.Module):
    def __init__(self, act: type[nn.Module] = nn.Hardswish, gate: type[nn.Module] = nn.Hardsigmoid) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn(3, 16, 3, 2), act())
        self.blocks = nn.Sequential(
            InvertedResidual(16, 32, 16, 1, act, gate), InvertedResidual(16, 48, 24, 2, act, gate),
            InvertedResidual(24, 72, 24, 1, act, gate),
        )  # fmt: skip
        self.head = nn.Sequential(*_conv_bn(24, 64, 1), act())
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(
            torch.flatten(nn.functional.adaptive_avg_pool2d(self.head(self.blocks(self.stem(x))), 1), 1)
        )


class EfficientNetish(MobileNetV3ish):
    def __init__(self) -> None:
        super().__init__(nn.SiLU, nn.Sigmoid)


class Yoloish(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Sequential(*_conv_bn(3, 16, 3, 2), nn.LeakyReLU(0.1))
        self.c2 = nn.Sequential(*_conv_bn(16, 32, 3, 2), nn.LeakyReLU(0.1))
        self.c3 = nn.Sequential(*_conv_bn(16, 16, 3), nn.LeakyReLU(0.1))
        self.c4 = nn.Sequential(*_conv_bn(64, 32, 1), nn.LeakyReLU(0.1))
        self.head_small = nn.Conv2d(32, 6, 1)
        self.head_large = nn.Conv2d(32 + 16, 6, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.c1(x)  # [N, 16, 16, 16]
        b = self.c2(a)  # [N, 32, 8, 8]
        left, right = torch.split(b, 16, dim=1)
        c = self.c4(torch.cat([left, self.c3(right), b], dim=1))  # [N, 32, 8, 8]
        up = nn.functional.interpolate(c, scale_factor=2, mode="nearest")
        small = self.head_small(c)
        large = self.head_large(torch.cat([up, a], dim=1))
        objectness = torch.sigmoid(small[:, 4:5] - 4.0)  # mostly small probabilities
        return large, objectness


class CRNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            *_conv_bn(1, 16, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            *_conv_bn(16, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d((4, 1)),
        )
        self.rnn = nn.LSTM(32 * 2, 24, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(48, 12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.convs(x)  # [N, 32, 2, W/2]
        seq = f.flatten(1, 2).transpose(1, 2)  # [N, W/2, 64]
        out, _ = self.rnn(seq)
        return self.fc(out)


class Bertish(nn.Module):
    def __init__(self, vocab: int = 200, d: int = 32, tokens: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(1, tokens, d) * 0.1)
        layer = nn.TransformerEncoderLayer(d, 2, 64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.pool = nn.Linear(d, d)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embed(ids) + self.pos)
        return torch.tanh(self.pool(h[:, 0]))


@dataclass(frozen=True)
class WildCase:
    """One architecture: how to build it and what its input looks like."""

    build: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    integer_input: int = 0  # > 0: token ids in [0, integer_input)


CASES: dict[str, WildCase] = {
    "resnet50": WildCase(ResNet50ish, (3, 32, 32)),
    "mobilenetv3": WildCase(MobileNetV3ish, (3, 32, 32)),
    "efficientnet": WildCase(EfficientNetish, (3, 32, 32)),
    "yolo": WildCase(Yoloish, (3, 32, 32)),
    "crnn": WildCase(CRNN, (1, 16, 32)),
    "bert": WildCase(Bertish, (16,), integer_input=200),
}


def make_inputs(case: WildCase, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if case.integer_input:
        return rng.integers(0, case.integer_input, (n, *case.input_shape)).astype(np.int64)
    return rng.standard_normal((n, *case.input_shape)).astype(np.float32)


def export(
    case: WildCase, exporter: str, opset: int, *, initializers_as_inputs: bool = False
) -> onnx.ModelProto:
    """The case's model exported with a dynamic batch, input named ``input``."""
    torch.manual_seed(0)
    module = _bn_stats(case.build())
    x = torch.from_numpy(make_inputs(case, 2, seed=0))
    with torch.no_grad():
        out = module(x)
    names = [f"output_{i}" for i in range(len(out))] if isinstance(out, tuple) else ["output"]
    dynamic = {n: {0: "batch"} for n in ["input", *names]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            program = torch.onnx.export(
                module, (x,), dynamo=True, opset_version=opset, input_names=["input"], output_names=names,
                dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1)}} if not case.integer_input
                else {"ids": {0: torch.export.Dim("batch", min=1)}}, verbose=False,
            )  # fmt: skip
            return program.model_proto
        buffer = io.BytesIO()
        torch.onnx.export(
            module, (x,), buffer, dynamo=False, opset_version=opset, input_names=["input"],
            output_names=names, dynamic_axes=dynamic, keep_initializers_as_inputs=initializers_as_inputs,
        )  # fmt: skip
    return onnx.load_from_string(buffer.getvalue())


def minus_one_dims(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every symbolic dim of the inputs and outputs written ``-1``, as PaddlePaddle exports do."""
    for value in (*model.graph.input, *model.graph.output):
        for dim in value.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.Clear()
                dim.dim_value = -1
    return model


def weights_as_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every initializer moved into a ``Constant`` node at the top of the graph."""
    constants = [onnx.helper.make_node("Constant", [], [t.name], value=t) for t in model.graph.initializer]
    inputs = {t.name for t in model.graph.initializer}
    kept_inputs = [i for i in model.graph.input if i.name not in inputs]
    del model.graph.initializer[:]
    del model.graph.input[:]
    model.graph.input.extend(kept_inputs)
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend([*constants, *nodes])
    return model


def nhwc_input(model: onnx.ModelProto) -> onnx.ModelProto:
    """The 4-D input taken in NHWC, with a ``Transpose`` to NCHW in front (as tf2onnx writes it)."""
    inp = model.graph.input[0]
    dims = inp.type.tensor_type.shape.dim
    n, c, h, w = (onnx.TensorShapeProto.Dimension() for _ in range(4))
    n.CopyFrom(dims[0])
    c.CopyFrom(dims[1])
    h.CopyFrom(dims[2])
    w.CopyFrom(dims[3])
    del dims[:]
    dims.extend([n, h, w, c])
    for node in model.graph.node:
        node.input[:] = ["input_nchw" if i == inp.name else i for i in node.input]
    model.graph.node.insert(
        0, onnx.helper.make_node("Transpose", [inp.name], ["input_nchw"], perm=[0, 3, 1, 2])
    )
    return model


REWRITES: dict[str, Callable[[onnx.ModelProto], onnx.ModelProto]] = {
    "minus_one_dims": minus_one_dims,
    "weights_as_constants": weights_as_constants,
    "nhwc_input": nhwc_input,
}


def sqnr_db(reference: np.ndarray, output: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio of ``output`` against ``reference``, in dB."""
    ref = np.asarray(reference, np.float64)
    noise = float(np.sum((np.asarray(output, np.float64) - ref) ** 2))
    return float("inf") if noise == 0 else float(10 * np.log10(max(float(np.sum(ref**2)), 1e-30) / noise))


def onnxruntime_default(
    model: onnx.ModelProto, batches: list[dict[str, np.ndarray]], workdir
) -> onnx.ModelProto:  # type: ignore[no-untyped-def]
    """onnxruntime's ``quantize_static`` with its default arguments, on the same batches."""
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    src, dst = workdir / "fp32.onnx", workdir / "ort.onnx"
    onnx.save(model, str(src))
    quantize_static(str(src), str(dst), Reader())
    return onnx.load(str(dst))


def streaming_model(depth: int = 4, width: int = 32, seed: int = 0) -> onnx.ModelProto:
    """A streaming voice model as exporters write one: the network sits inside ``If`` branches
    picked by the sample rate (16 kHz or 8 kHz), nested ``depth`` levels deep (each level picks by a
    sign test on the state), with every weight a ``Constant`` node inside its branch. Inputs: audio
    ``x[batch, width]``, a 0-d ``sr``, a recurrent ``state[2, batch, width]``; outputs ``y`` and the
    next state."""
    h = onnx.helper
    rng = np.random.default_rng(seed)
    counter = iter(range(10_000))

    def const(array: np.ndarray) -> tuple[onnx.NodeProto, str]:
        name = f"w{next(counter)}"
        return h.make_node("Constant", [], [name], value=onnx.numpy_helper.from_array(array, name)), name

    def dense(inp: str, out: str) -> list[onnx.NodeProto]:
        w_node, w = const((rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32))
        b_node, b = const((rng.standard_normal(width) * 0.1).astype(np.float32))
        k = next(counter)
        return [
            w_node, b_node,
            h.make_node("MatMul", [inp, w], [f"mm{k}"], name=f"mm{k}"),
            h.make_node("Add", [f"mm{k}", b], [f"add{k}"], name=f"add{k}"),
            h.make_node("Relu", [f"add{k}"], [out], name=f"relu{k}"),
        ]  # fmt: skip

    def branch(level: int, inp: str, rate: str) -> onnx.GraphProto:
        k = next(counter)
        out = f"{rate}_y{k}"
        nodes = dense(inp, f"{rate}_h{k}")
        if level > 1:
            cond = f"{rate}_cond{k}"
            nodes += [
                h.make_node("ReduceSum", [f"{rate}_h{k}"], [f"{rate}_sum{k}"], keepdims=0, name=f"sum{k}"),
                h.make_node("Greater", [f"{rate}_sum{k}", "zero"], [cond], name=f"gt{k}"),
                h.make_node("If", [cond], [out], name=f"if{k}",
                            then_branch=branch(level - 1, f"{rate}_h{k}", rate),
                            else_branch=branch(1, f"{rate}_h{k}", rate)),
            ]  # fmt: skip
        else:
            nodes += dense(f"{rate}_h{k}", out)
        return h.make_graph(
            nodes,
            f"{rate}_level{level}_{k}",
            [],
            [h.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None)],
        )

    state_mix = [
        h.make_node("ReduceMean", ["state"], ["state_mean"], axes=[0], keepdims=0, name="state_mean"),
        h.make_node("Add", ["x", "state_mean"], ["xs"], name="mix"),
    ]
    top = [
        *state_mix,
        h.make_node("Equal", ["sr", "rate16k"], ["is16k"], name="pick_rate"),
        h.make_node("If", ["is16k"], ["y"], name="by_rate", then_branch=branch(depth, "xs", "r16"),
                    else_branch=branch(depth, "xs", "r8")),
        h.make_node("Unsqueeze", ["y", "axis0"], ["y1"], name="y1"),
        h.make_node("Concat", ["y1", "y1"], ["next_state"], axis=0, name="next_state"),
    ]  # fmt: skip
    graph = h.make_graph(
        top,
        "streaming",
        [
            h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", width]),
            h.make_tensor_value_info("sr", onnx.TensorProto.INT64, []),
            h.make_tensor_value_info("state", onnx.TensorProto.FLOAT, [2, "batch", width]),
        ],
        [
            h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", width]),
            h.make_tensor_value_info("next_state", onnx.TensorProto.FLOAT, [2, "batch", width]),
        ],
        [
            onnx.numpy_helper.from_array(np.array(16000, np.int64), "rate16k"),
            onnx.numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
            onnx.numpy_helper.from_array(np.array([0], np.int64), "axis0"),
        ],
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=8)
