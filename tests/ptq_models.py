"""Small models where post-training algorithms have a problem to solve (shared by their tests)."""

from __future__ import annotations

import numpy as np


def mobilenet_block_module(seed: int = 0):
    """A MobileNet-style stack (conv -> ReLU -> [depthwise -> ReLU -> pointwise -> ReLU] x 2 ->
    pool -> linear) whose depthwise channels' weight ranges differ by up to 1000x.

    Each depthwise channel ``i`` is scaled by ``a_i`` and the pointwise column reading it by
    ``1 / a_i``: ReLU is positively homogeneous, so the float function is that of the unscaled
    model, but one weight scale per tensor wastes most of its levels on the small channels.
    """
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    c = 16
    layers = [torch.nn.Conv2d(3, c, 3, padding=1), torch.nn.ReLU()]
    for _ in range(2):
        dw, pw = torch.nn.Conv2d(c, c, 3, padding=1, groups=c), torch.nn.Conv2d(c, c, 1)
        a = torch.tensor(10.0 ** rng.uniform(-2.0, 1.0, c), dtype=torch.float32)
        with torch.no_grad():
            dw.weight.mul_(a.view(-1, 1, 1, 1))
            dw.bias.mul_(a)
            pw.weight.div_(a.view(1, -1, 1, 1))
        layers += [dw, torch.nn.ReLU(), pw, torch.nn.ReLU()]
    layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(c, 10)]
    return torch.nn.Sequential(*layers).eval()


def sqnr_db(reference: np.ndarray, got: np.ndarray) -> float:
    """``10 log10(sum ref^2 / sum (ref - got)^2)`` in float64."""
    ref = np.asarray(reference, np.float64)
    noise = float(np.sum((ref - np.asarray(got, np.float64)) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(float(np.sum(ref**2)) / noise)


def mobilenet_case(exporter: str = "torchscript", opset: int = 17) -> tuple[object, list, np.ndarray]:
    """The exported :func:`mobilenet_block_module`, 32 calibration batches and 32 held-out images."""
    import torch

    from tests.conftest import export_torch_module

    proto = export_torch_module(mobilenet_block_module(), (torch.randn(1, 3, 8, 8),), exporter, opset)
    name = proto.graph.input[0].name
    rng = np.random.default_rng(1)
    calib = [{name: rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(32)]
    return proto, calib, rng.standard_normal((32, 3, 8, 8)).astype(np.float32)


def outputs(model: object, images: np.ndarray) -> np.ndarray:
    """The model's first output on each image, one run per image, under onnxruntime."""
    from onnxq.runtime import make_session

    session = make_session(model)
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: images[i : i + 1]})[0] for i in range(len(images))])


def two_gemm_model(seed: int = 0) -> object:
    """``x [4, 8] -> fc1 (Gemm) -> h -> fc2 (Gemm) -> y``, with ``y`` and ``h`` both graph outputs:
    ``y`` is read by no node, ``h`` also by ``fc2`` (for the float-outputs option's tests)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.standard_normal((6, 8)).astype(np.float32) * 0.5, "w1"),
        numpy_helper.from_array(rng.standard_normal(6).astype(np.float32) * 0.1, "b1"),
        numpy_helper.from_array(rng.standard_normal((3, 6)).astype(np.float32) * 0.5, "w2"),
        numpy_helper.from_array(rng.standard_normal(3).astype(np.float32) * 0.1, "b2"),
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Gemm", ["h", "w2", "b2"], ["y"], name="fc2", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "two_gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3]),
            helper.make_tensor_value_info("h", TensorProto.FLOAT, [4, 6]),
        ],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def gemm_batches(n: int, seed: int) -> list[dict[str, np.ndarray]]:
    """``n`` random feeds of :func:`two_gemm_model`."""
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((4, 8)).astype(np.float32)} for _ in range(n)]
