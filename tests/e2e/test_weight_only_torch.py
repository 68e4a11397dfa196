"""Weight-only quantization of the digits models exported by torch (both exporters).

- int8 per channel, the digits ResNet and the transformer encoder: top-1 within 1.0 point of fp32
  and >= 99% the same predictions (the static tests' bounds); file <= 0.28x of fp32.
- int4 block 32 on the transformer: logits' cosine to fp32 >= 0.99, file <= 0.2x of fp32 (its
  weights dominate the file); both formats run on onnxruntime and MatMulNBits gives the qdq
  format's outputs to float tolerance (both dequantize the same integers; compared unoptimised,
  since optimised onnxruntime runs the qdq form's MatMul on int8-rounded activations).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

import onnxq
from onnxq.runtime import make_session

logger = logging.getLogger(__name__)
pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning"
)


def _logits(model, x: np.ndarray, optimize: bool = True) -> np.ndarray:
    session = make_session(model, optimize=optimize)
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _size_ratio(model, fp32) -> float:
    return model.ByteSize() / fp32.proto.ByteSize()


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("name", ["resnet", "transformer"])
def test_int8_weight_only_keeps_accuracy(exported, digits, name, dynamo) -> None:
    fp32 = exported(name, dynamo, 18)
    qmodel = onnxq.quantize_weight_only(fp32.path, "int8")
    logits = _logits(qmodel, digits.x_test)
    ref = _logits(fp32.proto, digits.x_test)
    top1 = lambda z: float((z.argmax(1) == digits.y_test).mean())  # noqa: E731
    agreement = float((logits.argmax(1) == ref.argmax(1)).mean())
    ratio = _size_ratio(qmodel, fp32)
    logger.info("%s int8: top-1 %.4f (fp32 %.4f), agreement %.4f, size %.3fx", fp32.label, top1(logits),
                top1(ref), agreement, ratio)  # fmt: skip
    print(f"{fp32.label} int8 weight-only: top-1 {top1(logits):.4f} (fp32 {top1(ref):.4f}), "
          f"agreement {agreement:.4f}, size {ratio:.3f}x")  # fmt: skip
    assert top1(logits) >= top1(ref) - 0.01 and agreement >= 0.99
    assert ratio <= 0.28


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_int4_transformer_in_both_formats(exported, digits, dynamo) -> None:
    fp32 = exported("transformer", dynamo, 18)
    ref = _logits(fp32.proto, digits.x_test)
    qdq = onnxq.quantize_weight_only(fp32.path, "int4", 32)
    nbits = onnxq.convert_weight_only(fp32.path, "int4", 32, format="onnxruntime")
    assert any(e.kind == "matmul_nbits" for e in nbits.report.quantized)
    for label, model in (("qdq", qdq), ("onnxruntime", nbits.model)):
        logits = _logits(model, digits.x_test)
        cosine, ratio = _cosine(logits, ref), _size_ratio(model, fp32)
        agreement = float((logits.argmax(1) == ref.argmax(1)).mean())
        print(f"{fp32.label} int4 block 32 {label}: cosine {cosine:.5f}, agreement {agreement:.4f}, "
              f"size {ratio:.3f}x")  # fmt: skip
        assert cosine >= 0.99 and ratio <= 0.2
    a, b = _logits(qdq, digits.x_test, optimize=False), _logits(nbits.model, digits.x_test, optimize=False)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(a).max()))
