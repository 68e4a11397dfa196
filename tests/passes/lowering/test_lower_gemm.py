"""The Gemm matcher's refusals (onnxq.passes.lowering.gemm): a Gemm reading a float input is no
candidate and says nothing; a QDQ Gemm whose output stays float is noted."""

from __future__ import annotations

from _lowering_helpers import same_bytes

import onnxq
from onnxq.lower import lower
from tests.ptq_models import gemm_batches, two_gemm_model


def test_float_graph_output_gemm_stays_qdq_with_a_note_and_the_rest_is_lowered() -> None:
    model = two_gemm_model()
    q = onnxq.quantize_static(model, gemm_batches(16, seed=1), "x86", progress=False, float_outputs=True)
    result = lower(q)
    assert result.lowered == 1  # fc1 (its output h is quantized: fc2 reads it)
    assert result.notes == (
        "Gemm 'fc2' stays QDQ: its output is a float graph output (no QuantizeLinear after it)",
    )
    ours = [n.op_type for n in result.model.graph.node if n.domain == "ai.onnxq"]
    assert "QGemm" in ours and [n.op_type for n in result.model.graph.node].count("Gemm") == 1
    same_bytes(q, result.model, gemm_batches(1, seed=2)[0])  # y and h as onnxruntime gives them


def test_float_gemm_is_no_candidate_and_gets_no_note() -> None:
    result = lower(two_gemm_model())
    assert result.lowered == 0 and result.notes == ()
