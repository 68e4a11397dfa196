"""GPTQ weight-only on the digits transformer exported by torch: int4 GPTQ logits closer to fp32
(SQNR on the held-out test set) than int4 RTN at block 32 and 128, and the Hessian accumulators'
size independent of the number of calibration samples."""

from __future__ import annotations

import numpy as np
import pytest

import onnxq
from onnxq.api import structurally_prepared
from onnxq.calibration.engine import calibrate
from onnxq.opsets import qdq_opset
from onnxq.planning.weight_only import (
    build_weight_only_plan,
    check_weight_only_op_types,
    weight_only_format,
    weight_only_spec,
)
from onnxq.runtime import make_session
from onnxq.weights.hessian import HessianAccumulator, hessian_inputs

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning"
)


def _logits(model, x: np.ndarray, optimize: bool = True) -> np.ndarray:
    """Optimised, onnxruntime runs a qdq 4-bit DequantizeLinear + MatMul as its MatMulNBits with
    activations rounded to int8 (accuracy level 4), noise of about the weights' own at int4
    GPTQ; the qdq models run unoptimised (``optimize=False``) compute in float, as MatMulNBits
    at level 0 (the onnxruntime format) does."""
    session = make_session(model, optimize=optimize)
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _sqnr(ref: np.ndarray, out: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref**2) / np.sum((ref - out) ** 2)))


def _batches(digits, samples: int) -> list[dict[str, np.ndarray]]:
    x = digits.x_train[:samples]
    return [{"input": x[i : i + 64]} for i in range(0, len(x), 64)]


@pytest.mark.parametrize("dynamo", [True], ids=["dynamo"])
def test_int4_gptq_closer_to_fp32_than_rtn(exported, digits, dynamo) -> None:
    fp32 = exported("transformer", dynamo, 18)
    ref = _logits(fp32.proto, digits.x_test)
    data = _batches(digits, 512)
    for block in (32, 128):
        rtn = _logits(onnxq.quantize_weight_only(fp32.path, "int4", block), digits.x_test, optimize=False)
        gptq = onnxq.quantize_weight_only(fp32.path, "int4", block, method="gptq", data=data, progress=False)
        nbits = onnxq.quantize_weight_only(fp32.path, "int4", block, method="gptq", data=data, progress=False,
                                           format="onnxruntime")  # fmt: skip
        s_rtn, s_gptq, s_nbits = (_sqnr(ref, z) for z in (rtn, _logits(gptq, digits.x_test, optimize=False),
                                                            _logits(nbits, digits.x_test)))  # fmt: skip
        print(f"{fp32.label} int4 block {block}: SQNR RTN {s_rtn:.2f} dB, GPTQ {s_gptq:.2f} dB "
              f"(MatMulNBits {s_nbits:.2f} dB)")  # fmt: skip
        assert s_gptq > s_rtn + 0.5 and abs(s_nbits - s_gptq) < 0.5


def test_hessians_do_not_grow_with_samples(exported, digits) -> None:
    fp32 = exported("transformer", True, 18)
    spec = weight_only_spec("int4", 32, True)
    model, source_op_types, _ = structurally_prepared(fp32.path, qdq_opset("int4", True), requantize=False)
    chosen, fmt = check_weight_only_op_types(None), weight_only_format("qdq")
    plan = build_weight_only_plan(model.graph, spec, chosen, fmt, source_op_types)
    inputs = hessian_inputs(model, plan)
    assert inputs
    shapes = []
    for samples in (64, 512):
        accumulators = {name: HessianAccumulator(k) for name, k in inputs.values()}
        calibrate(model, accumulators, _batches(digits, samples), progress=False)  # type: ignore[arg-type]
        shapes.append({name: acc.sum.shape for name, acc in accumulators.items()})
        assert all(acc.rows >= samples for acc in accumulators.values())
    assert shapes[0] == shapes[1] == {name: (k, k) for name, k in inputs.values()}
