"""Run the fp32 and the QDQ model side by side over the data and feed the metrics.

Three sessions see each run of samples (one run at a time, so memory is one run's tensors,
whatever the number of samples):

* the **fp32** model, with every matched tensor as an extra output: the reference;
* the **QDQ** model, with every matched DequantizeLinear output as an extra output: the
  *accumulated* error (everything upstream was quantized too);
* the **isolated** QDQ model (:func:`isolated_model`): each matched activation ``X`` is cut from
  its readers, which read ``DQ(Q(X_fp32))`` instead, ``X_fp32`` a new graph input fed with the
  fp32 model's value. The original ``DQ(Q(X))`` stays as an output, so it shows the error
  *introduced* by the layer that computes ``X`` alone: the quantization of its inputs, its weights
  and its output, from exact fp32 inputs. One model computes every layer's isolated error in the
  same run; nothing is approximated.

All three run without graph optimisations: every DequantizeLinear is computed as ONNX defines
it, in float, which is what onnxruntime's fused integer kernels reproduce up to rounding.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import onnx_ir as ir

from onnxq.calibration.data import model_input_specs, rebatch, runs_as_given, validate_batches
from onnxq.compare.matching import TensorMatch
from onnxq.compare.metrics import ErrorStats, Histogram
from onnxq.graph import NameAuthority, consumers, is_op
from onnxq.io import to_proto
from onnxq.runtime import session_with_outputs

logger = logging.getLogger(__name__)

#: Bins of each activation's histogram, over its quantization range.
HISTOGRAM_BINS = 32


class TensorStats:
    """What one matched tensor accumulates over the samples."""

    def __init__(self, match: TensorMatch) -> None:
        self.match = match
        self.accumulated = ErrorStats()
        self.introduced = ErrorStats()
        self.histogram = Histogram(*match.quantization.range, bins=HISTOGRAM_BINS)


def isolated_model(quantized: ir.Model, matches: Sequence[TensorMatch]) -> tuple[ir.Model, dict[str, str]]:
    """A copy of ``quantized`` in which the readers of each matched activation read
    ``DQ(Q(new graph input))``, and ``{fp32 tensor name: that input's name}``."""
    model = ir.serde.deserialize_model(to_proto(quantized))
    graph = model.graph
    names = NameAuthority(graph)
    quantize_nodes = {str(n.inputs[0].name): n for n in graph if is_op(n, "QuantizeLinear") and n.inputs[0]}
    fed: dict[str, str] = {}
    for m in matches:
        q = quantize_nodes[m.quantize_input]
        x = q.inputs[0]
        assert x is not None
        x_fp32 = ir.Value(
            name=names.value(f"{m.name}_fp32"), type=ir.TensorType(x.dtype or ir.DataType.FLOAT)
        )
        graph.inputs.append(x_fp32)
        fed[m.name] = str(x_fp32.name)
        q2 = ir.Node(
            q.domain,
            "QuantizeLinear",
            [x_fp32, *q.inputs[1:]],
            attributes=list(q.attributes.values()),
            name=names.node(f"{q.name}_isolated"),
        )
        q2.outputs[0].name = names.value(f"{m.name}_fp32_q")
        graph.insert_before(q, q2)
        for dq in [c for c in consumers(q.outputs[0]) if is_op(c, "DequantizeLinear")]:
            dq2 = ir.Node(
                dq.domain,
                "DequantizeLinear",
                [q2.outputs[0], *dq.inputs[1:]],
                attributes=list(dq.attributes.values()),
                name=names.node(f"{dq.name}_isolated"),
            )
            dq2.outputs[0].name = names.value(f"{m.name}_fp32_dq")
            graph.insert_after(q2, dq2)
            out = dq.outputs[0]
            for use in list(out.uses()):
                use.node.replace_input_with(use.idx, dq2.outputs[0])
    return model, fed


def model_runs(
    float_model: ir.Model, batches: Iterable[object], limit: int | None
) -> Iterator[tuple[dict[str, np.ndarray], int]]:
    """The model's runs of the data, cut after ``limit`` samples."""
    specs = model_input_specs(float_model)
    as_given = runs_as_given(batches)
    seen = 0
    for feed, n in rebatch(specs, validate_batches(specs, batches, as_given), as_given=as_given):
        if limit is not None and seen + n > limit:
            if n == 1 or seen >= limit:
                return
            feed, n = {k: v[: limit - seen] for k, v in feed.items()}, limit - seen
        seen += n
        yield feed, n


def accumulate(
    float_model: ir.Model,
    quantized_model: ir.Model,
    matches: Sequence[TensorMatch],
    batches: Iterable[object],
    limit: int | None = None,
) -> tuple[list[TensorStats], int]:
    """Run the three models (module docstring) over ``batches``; the statistics of every match and
    the number of samples seen."""
    stats = [TensorStats(m) for m in matches]
    inputs = {str(v.name) for v in float_model.graph.inputs}
    fetched = [m.name for m in matches if m.name not in inputs]
    dequantized = [m.dequantized for m in matches]
    isolated, fed = isolated_model(quantized_model, matches)
    samples = 0
    with (
        session_with_outputs(float_model, fetched, what="float model", optimize=False) as fp32,
        session_with_outputs(quantized_model, dequantized, what="quantized model", optimize=False) as qdq,
        session_with_outputs(isolated, dequantized, what="isolated quantized model", optimize=False) as iso,
    ):
        for feed, n in model_runs(float_model, batches, limit):
            ref = {**feed, **dict(zip(fetched, fp32.run(fetched, feed), strict=True))}
            got = qdq.run(dequantized, feed)
            alone = iso.run(dequantized, {**feed, **{fed[m.name]: ref[m.name] for m in matches}})
            for s, acc, intro in zip(stats, got, alone, strict=True):
                r = ref[s.match.name]
                s.accumulated.update(r, acc)
                s.introduced.update(r, intro)
                s.histogram.update(r)
            samples += n
            logger.debug("compared %d samples", samples)
    return stats, samples


__all__ = ["HISTOGRAM_BINS", "TensorStats", "accumulate", "isolated_model", "model_runs"]
