"""onnxq's dynamic quantization against PyTorch's, on the same nn.Linear and nn.LSTM modules.

``torch.ao.quantization.quantize_dynamic`` (``default_dynamic_qconfig``: int8 symmetric weights
per tensor, uint8 activations quantized at run time) on PyTorch's default engine (``x86``, whose
dynamic activations use 7 bits: ``reduce_range``), and ``onnxq.quantize_dynamic`` on the same
module exported with the TorchScript exporter, in both formats and both weight granularities,
run for its exact integer results (:func:`onnxq.passes.uint8_twin.exact_on_onnxruntime`). The two
are different roundings of one computation, so they agree to about the size of their errors:

- ``|onnxq - torch| <= 2.5%`` of the fp32 output's largest magnitude (measured 1.6-2.1%);
- onnxq is no less accurate: ``|onnxq - fp32| <= |torch - fp32|`` (measured 0.4-0.9% against
  torch's 1.6%; torch's 7-bit activations cost it a bit; the LSTM in the ``qdq`` format keeps
  float activations, so it is closer still).
"""

from __future__ import annotations

import numpy as np
import pytest

import onnxq
from onnxq.passes.uint8_twin import exact_on_onnxruntime
from onnxq.runtime import make_session

torch = pytest.importorskip("torch")
nn = torch.nn
quantization = pytest.importorskip("torch.ao.quantization")

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning"
)
MAX_DISAGREEMENT = 0.025


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(64, 256), nn.Linear(256, 32)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


class Sequence(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(16, 64, batch_first=True)

    def forward(self, x):
        return self.lstm(x)[0]


MODULES = {"linear": (MLP, (8, 64)), "lstm": (Sequence, (4, 10, 16))}


@pytest.fixture(scope="module")
def cases(request):
    if "x86" not in torch.backends.quantized.supported_engines:
        pytest.skip("this torch build has no x86 quantized engine")
    out = {}
    engine = torch.backends.quantized.engine
    torch.backends.quantized.engine = "x86"
    try:
        for name, (cls, shape) in MODULES.items():
            torch.manual_seed(0)
            module, x = cls().eval(), torch.randn(*shape)
            with torch.no_grad():
                fp32 = module(x).numpy()
                quantized = quantization.quantize_dynamic(module, {nn.Linear, nn.LSTM}, dtype=torch.qint8)
                out[name] = (module, x, fp32, quantized(x).numpy())
    finally:
        torch.backends.quantized.engine = engine
    return out


@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
@pytest.mark.parametrize("fmt", ["qdq", "onnxruntime"])
@pytest.mark.parametrize("name", list(MODULES))
def test_onnxq_agrees_with_torch_quantize_dynamic(cases, export_torch, name, fmt, per_channel) -> None:
    module, x, fp32, torch_q = cases[name]
    model = export_torch(module, (x,), "torchscript", 17)
    qmodel = exact_on_onnxruntime(onnxq.quantize_dynamic(model, format=fmt, per_channel=per_channel))
    session = make_session(qmodel)
    ours = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    scale = float(np.abs(fp32).max())
    assert np.abs(ours - torch_q).max() <= MAX_DISAGREEMENT * scale
    assert np.abs(ours - fp32).max() <= np.abs(torch_q - fp32).max()
