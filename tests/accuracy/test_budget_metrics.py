"""The budget metrics and their bootstrap intervals against a direct numpy computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from onnxq.accuracy.metrics import metric_named


def _outputs(seed: int = 1, n: int = 40) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n, 10)).astype(np.float32)
    return [ref], [ref + rng.normal(scale=0.4, size=ref.shape).astype(np.float32)]


def _direct(ref: np.ndarray, got: np.ndarray, name: str) -> float:
    if name == "top1":
        return 100.0 * float(np.mean(ref.argmax(-1) == got.argmax(-1)))
    r, q = ref.astype(np.float64), got.astype(np.float64)
    return 10 * math.log10(np.sum(r**2) / np.sum((r - q) ** 2))


@pytest.mark.parametrize("name", ["top1", "sqnr"])
def test_bootstrap_interval_equals_numpy_resampling(name: str) -> None:
    ref, got = _outputs()
    est = metric_named(name, 1.0).estimate(ref, got, resamples=200, seed=3)
    idx = np.random.default_rng(3).integers(0, 40, size=(200, 40))
    draws = [_direct(ref[0][i], got[0][i], name) for i in idx]
    low, high = np.percentile(draws, [2.5, 97.5])
    assert math.isclose(est.value, _direct(ref[0], got[0], name), rel_tol=1e-9)
    assert math.isclose(est.low, low, rel_tol=1e-9) and math.isclose(est.high, high, rel_tol=1e-9)
    assert est.samples_needed == math.ceil(40 * ((high - low) / 2 / (1.0 if name == "top1" else 0.5)) ** 2)


def test_callable_draws_equal_the_builtin_ones() -> None:
    ref, got = _outputs()

    def top1(f, q) -> float:
        return 100.0 * float(np.mean(f[0].argmax(-1) == q[0].argmax(-1)))

    mine = metric_named(top1, 99.0, tolerance=1.0).estimate(ref, got, resamples=100)
    builtin = metric_named("top1", 1.0).estimate(ref, got, resamples=100)
    assert mine == builtin


def test_no_disagreement_needs_the_rule_of_three() -> None:
    ref, _ = _outputs()
    est = metric_named("top1", 0.5).estimate(ref, ref)
    assert (est.value, est.low, est.high, est.samples_needed) == (100.0, 100.0, 100.0, 600)
    sqnr = metric_named("sqnr", 30).estimate(ref, ref)
    assert sqnr.value == math.inf and sqnr.samples_needed is None and sqnr.to_dict()["value"] is None
