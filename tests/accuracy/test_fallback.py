"""Automatic fallback on the digits CNN that ships with onnxq (exported from torch): a budget
all-int8 meets, a tight one that keeps layers float, a callable metric, an impossible budget."""

from __future__ import annotations

import numpy as np
import pytest

import onnxq
from onnxq.accuracy.fallback import fit_budget, quantize_with_budget
from onnxq.accuracy.held_out import run_outputs, split_runs
from onnxq.errors import OnnxqError


@pytest.fixture(scope="module")
def digits() -> tuple[str, list[dict[str, np.ndarray]]]:
    from onnxq.demo import asset_path

    x = np.load(asset_path("digits_calib.npz"))["input"]
    return asset_path("digits_cnn.onnx"), [{"input": x}]


def _harsh(model: str) -> onnxq.QConfigMapping:
    """Per-tensor weights and symmetric int8 activations: quantization costs a few dB here."""
    mapping = onnxq.prepare(model).mapping
    assert mapping is not None
    return mapping.with_overrides(per_channel=False, activation_dtype="int8")


def test_budget_met_by_all_int8_keeps_nothing_float(digits) -> None:
    model, data = digits
    result = quantize_with_budget(model, data, 0.5, metric="top1")
    assert result.met and result.float_layers == () and result.trials == 1
    assert result.final == result.all_int8 and result.all_int8.value >= 99.5
    assert len(result.ranking) == len(onnxq.prepare(model).plan.quantized_nodes())
    assert not result.report.float_nodes


def test_tight_budget_keeps_layers_float_and_meets_it(digits) -> None:
    model, data = digits
    prepared = onnxq.prepare(model, _harsh(model))
    result = fit_budget(prepared, data, 40.0, metric="sqnr")
    assert result.all_int8.value < 40.0 <= result.final.value and result.met
    assert 0 < len(result.float_layers) < len(result.ranking)
    assert set(result.float_layers) <= {n.name for n in result.report.float_nodes}
    assert result.mapping.node_names == {name: None for name in result.float_layers}
    assert result.trials >= len(result.float_layers) + 1
    low, high = result.final.low, result.final.high
    assert low <= result.final.value <= high and result.final.samples == 12


def test_greedy_leaves_no_layer_it_can_put_back(digits) -> None:
    model, data = digits
    prepared = onnxq.prepare(model, _harsh(model))
    result = fit_budget(prepared, data, 40.0, metric="sqnr")
    _, held = split_runs(prepared.model, data)
    ref = run_outputs(prepared.model, held, "fp32")
    for name in result.float_layers:
        mapping = result.mapping.set_node_name(name, prepared.mapping.global_qconfig)
        got = run_outputs(prepared.convert(plan=prepared.plan_for(mapping)), held, "trial")
        r = np.concatenate([o.ravel() for o in ref]).astype(np.float64)
        q = np.concatenate([o.ravel() for o in got]).astype(np.float64)
        assert 10 * np.log10(np.sum(r**2) / np.sum((r - q) ** 2)) < 40.0, name


def test_callable_metric_sees_every_output_and_sets_the_floor(digits) -> None:
    model, data = digits
    seen: list[int] = []

    def agreement(float_outputs, quant_outputs) -> float:
        seen.append(len(float_outputs[0]))
        return float(np.mean(float_outputs[0].argmax(-1) == quant_outputs[0].argmax(-1)))

    result = quantize_with_budget(model, data, 0.9, metric=agreement, resamples=50)
    assert result.met and result.metric.endswith("agreement") and result.final.value >= 0.9
    assert seen[0] == 12 and len(seen) >= 1 + 3 * 50  # the scores, then 50 draws per interval


def test_impossible_budget_returns_the_best_found(digits) -> None:
    model, data = digits

    def agreement(float_outputs, quant_outputs) -> float:
        return float(np.mean(float_outputs[0].argmax(-1) == quant_outputs[0].argmax(-1)))

    result = quantize_with_budget(model, data, 1.5, _harsh(model), metric=agreement, resamples=20)
    assert not result.met and result.final.value == max(1.0, result.final.value)
    assert result.trials == len(result.ranking) + 1 and "does NOT meet" in result.summary()


def test_metric_that_raises_is_named_in_one_line(digits) -> None:
    model, data = digits

    def broken_metric(float_outputs, quant_outputs) -> float:
        raise ValueError("no labels here")

    with pytest.raises(OnnxqError, match=r"metric .*broken_metric raised ValueError: no labels here"):
        quantize_with_budget(model, data, 0.5, metric=broken_metric)


@pytest.mark.parametrize(
    ("metric", "budget", "match"),
    [
        ("top1", -0.5, "points of agreement lost"),
        ("accuracy", 1.0, "unknown metric"),
        ("sqnr", float("nan"), "dB"),
    ],
)
def test_bad_metric_or_budget_is_refused(digits, metric: str, budget: float, match: str) -> None:
    model, data = digits
    with pytest.raises(OnnxqError, match=match):
        quantize_with_budget(model, data, budget, metric=metric)


def test_int16_fallback_keeps_layers_at_16_bit_and_meets_the_budget(digits) -> None:
    import onnx

    from onnxq.accuracy.fallback import INT16_OPSET, widened

    model, data = digits
    result = quantize_with_budget(model, data, 40.0, _harsh(model), metric="sqnr", fallback="int16")
    assert result.met and result.final.value >= 40.0 > result.all_int8.value
    assert result.float_layers and not result.report.float_nodes  # kept quantized, at 16 bit
    qc = _harsh(model).global_qconfig
    assert all(v == widened(qc) for v in result.mapping.node_names.values())
    assert widened(qc).weight.dtype == "int16" and widened(qc).activation.dtype == "int16"
    assert result.to_dict()["fallback"] == "int16" and "at 16 bit" in result.summary()
    by_name = {i.name: i for i in result.model.graph.initializer}
    wide = {by_name[n.input[0]].data_type for n in result.model.graph.node
            if n.op_type == "DequantizeLinear" and n.input[0] in by_name}  # fmt: skip
    assert onnx.TensorProto.INT16 in wide and onnx.TensorProto.INT8 in wide
    assert max(o.version for o in result.model.opset_import if o.domain in ("", "ai.onnx")) >= INT16_OPSET
    with pytest.raises(OnnxqError, match="min_opset=21"):
        fit_budget(onnxq.prepare(model, _harsh(model)), data, 40.0, metric="sqnr", fallback="int16")
    with pytest.raises(OnnxqError, match="fallback must be one of"):
        fit_budget(onnxq.prepare(model, _harsh(model)), data, 40.0, metric="sqnr", fallback="fp16")


def test_weight_only_plan_is_ranked_by_measurement(digits) -> None:
    from onnxq.targets import target_mapping, weight_only

    model, data = digits
    mapping = weight_only(target_mapping())
    result = quantize_with_budget(model, data, 60.0, mapping, metric="sqnr")
    layers = onnxq.prepare(model, mapping).plan.quantized_nodes()
    assert result.ranked_by == "measured" and {n for n, _ in result.ranking} == set(layers)
    assert result.met == (result.final.value >= 60.0)
