"""Quantization-aware training that ends in onnxq's QDQ model: ``prepare_qat`` / ``convert_qat``.

``prepare_qat`` asks onnxq's planner where the Q/DQ go instead of keeping rules of its own: it
exports the module (:mod:`onnxq.torch.quantize`), plans it with :func:`onnxq.prepare`, and places
one :class:`~onnxq.torch.fake_quant.FakeQuantize` per tensor group of the plan at the module
outputs (or model inputs) that hold the group's observed tensors (:mod:`onnxq.torch.scopes`).
Tensors of one group (a Concat's inputs and output) share that one module, hence one scale. The
planner's fusion groups carry over as they are: a Conv + ReLU gets no fake-quant between the two,
because the plan observes the ReLU's output only. ``prepare_qat(..., float_outputs=True)`` plans
as ``prepare`` does with it: a model output no node reads gets no fake-quant, and ``convert_qat``
leaves it float too.

Every planned weight's module is replaced: ``Conv2d`` (+ its ``BatchNorm2d``, which becomes an
``Identity``) by :class:`QuantConv`, ``Linear`` by :class:`QuantLinear`. ``QuantConv`` folds the
BatchNorm into the weight it fake-quantizes, ``W' = W * gamma / sqrt(var + eps)``,
``b' = beta + (b - mean) * gamma / sqrt(var + eps)``; for the first ``freeze_bn_steps`` training
steps with the batch's statistics (updating the running ones), then with the running statistics,
which are what the exported model folds. Where the plan stores the (folded) bias as int32, the
bias is fake-quantized on that grid, ``s_b = s_in * s_w`` with ``s_in`` the scale of the input's
fake-quant, as the converter rounds it.

``convert_qat`` unwraps the float module (trained weights, BatchNorm kept), exports and plans it
again, and converts it with :func:`onnxq.api.convert`: each tensor group's spec gets the
``fixed_qparams`` observer holding the fake-quant's scale and zero point, so the QDQ model carries
the trained parameters; the weights are rounded from the folded float weights exactly as the
fake-quant rounded them.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from onnxq.api import QConfigLike, convert, prepare
from onnxq.calibration.resolve import make_observers
from onnxq.calibration.result import CalibrationResult
from onnxq.errors import ConfigError, OnnxqError
from onnxq.planning.plan import QuantPlan
from onnxq.qconfig import QSpec
from onnxq.scheme import PerBlock, PerTensor
from onnxq.torch.fake_quant import (
    FakeQuantize,
    fake_quantize,
    fake_quantize_bias,
    spec_range,
    weight_qparams,
)
from onnxq.torch.quantize import ModuleQConfigMapping, export_for_onnxq
from onnxq.torch.scopes import Site, SiteFinder, batchnorm_pairs, node_modules

logger = logging.getLogger(__name__)
WEIGHT_OBSERVERS = ("minmax", "per_channel_minmax")


@dataclass(frozen=True)
class QatConfig:
    """``observe_steps``: training steps during which activation ranges are observed, then frozen;
    ``freeze_bn_steps``: steps after which BatchNorm uses (and stops updating) its running
    statistics; ``observer``: "moving_average" or "minmax"; ``learnable_scales``: LSQ scales."""

    observe_steps: int = 100
    freeze_bn_steps: int = 200
    observer: str = "moving_average"
    averaging_constant: float = 0.01
    learnable_scales: bool = False

    def __post_init__(self) -> None:
        for name in ("observe_steps", "freeze_bn_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"QatConfig.{name} must be a positive int, got {value!r}")
        if self.observer not in ("moving_average", "minmax"):
            raise ConfigError(
                f"QatConfig.observer must be 'moving_average' or 'minmax', got {self.observer!r}"
            )
        if not 0.0 < self.averaging_constant <= 1.0:
            raise ConfigError(
                f"QatConfig.averaging_constant must be in (0, 1], got {self.averaging_constant!r}"
            )


class _QuantWeighted(nn.Module):
    """What QuantConv and QuantLinear share: the weight fake-quantized as ``spec``, and, once
    :meth:`quantize_bias_with` names the fake-quant of the input, the bias on the int32 grid
    ``s_in * s_w`` the converter stores it on."""

    def __init__(self, spec: QSpec, per_channel: bool) -> None:
        super().__init__()
        self.spec, self.per_channel = spec, per_channel
        self._input_fq: tuple[FakeQuantize, ...] = ()  # a tuple: not a submodule of this one

    def quantize_bias_with(self, input_fq: FakeQuantize) -> None:
        self._input_fq = (input_fq,)

    def fake_quantized(
        self, w: torch.Tensor, b: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        scale, zp = weight_qparams(w, self.spec, self.per_channel)
        wq = fake_quantize(w, scale, zp, *spec_range(self.spec))
        if b is None or not self._input_fq or not self._input_fq[0].observed:
            return wq, b
        return wq, fake_quantize_bias(b, self._input_fq[0].scale, scale)


class QuantConv(_QuantWeighted):
    """A ``Conv2d`` (with the ``BatchNorm2d`` after it folded in) whose weight is fake-quantized."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None, spec: QSpec, per_channel: bool) -> None:
        super().__init__(spec, per_channel)
        self.conv, self.bn = conv, bn
        self.bn_frozen = False

    def folded(self, x: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The weight and bias the exported model computes with (BatchNorm folded)."""
        conv, bn = self.conv, self.bn
        if bn is None:
            return conv.weight, conv.bias
        if x is not None:  # batch statistics, as BatchNorm in training mode
            y = conv._conv_forward(x, conv.weight, None)
            mean, var = y.mean(dim=(0, 2, 3)), y.var(dim=(0, 2, 3), unbiased=False)
            with torch.no_grad():
                n = y.numel() / y.shape[1]
                m = bn.momentum if bn.momentum is not None else 0.1
                bn.running_mean.mul_(1 - m).add_(m * mean.detach())
                bn.running_var.mul_(1 - m).add_(m * var.detach() * n / max(n - 1, 1))
                bn.num_batches_tracked.add_(1)
        else:
            mean, var = bn.running_mean, bn.running_var
        factor = bn.weight / torch.sqrt(var + bn.eps)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(mean)
        return conv.weight * factor.reshape(-1, 1, 1, 1), bn.bias + (bias - mean) * factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch_stats = self.training and self.bn is not None and not self.bn_frozen
        return self.conv._conv_forward(x, *self.fake_quantized(*self.folded(x if batch_stats else None)))


class QuantLinear(_QuantWeighted):
    """A ``Linear`` whose weight is fake-quantized."""

    def __init__(self, linear: nn.Linear, spec: QSpec, per_channel: bool) -> None:
        super().__init__(spec, per_channel)
        self.linear = linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, *self.fake_quantized(self.linear.weight, self.linear.bias))


class OutputFQ(nn.Module):
    """``fq(inner(...))``: a module whose output is a planned tensor."""

    def __init__(self, inner: nn.Module, fq: FakeQuantize) -> None:
        super().__init__()
        self.inner, self.fq = inner, fq

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.fq(self.inner(*args, **kwargs))


class QatModule(nn.Module):
    """The trainable module ``prepare_qat`` returns; ``convert_qat`` turns it into a QDQ model.

    Attributes:
        model: The user's module with its planned parts wrapped.
        fake_quants: One FakeQuantize per planned tensor group (keyed by the group's index).
        sites: Where each group's fake-quant sits (:class:`~onnxq.torch.scopes.Site`).
    """

    def __init__(
        self,
        model: nn.Module,
        fake_quants: Mapping[int, FakeQuantize],
        sites: Mapping[Site, int],
        bn_paths: Mapping[str, str],
        example_inputs: tuple[torch.Tensor, ...],
        export_options: Mapping[str, Any],
        mapping: ModuleQConfigMapping,
        config: QatConfig,
        float_outputs: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        self.fake_quants = nn.ModuleDict({str(i): fq for i, fq in fake_quants.items()})
        self.sites = dict(sites)
        self.bn_paths = dict(bn_paths)
        self.example_inputs = example_inputs
        self.export_options = dict(export_options)
        self.mapping = mapping
        self.config = config
        self.float_outputs = float_outputs
        self.register_buffer("steps", torch.tensor(0, dtype=torch.int64))

    def fake_quant_at(self, site: Site) -> FakeQuantize | None:
        index = self.sites.get(site)
        return None if index is None else self.fake_quants[str(index)]

    def forward(self, *args: torch.Tensor) -> Any:
        if self.training:
            self.steps += 1
            step = int(self.steps)
            for m in self.model.modules():
                if isinstance(m, QuantConv):
                    m.bn_frozen = step > self.config.freeze_bn_steps
            for fq in self.fake_quants.values():
                fq.observing = step <= self.config.observe_steps
        args = tuple(
            fq(a) if (fq := self.fake_quant_at(Site("input", index=i))) is not None else a
            for i, a in enumerate(args)
        )
        out = self.model(*args)
        root = self.fake_quant_at(Site("output", ""))
        return out if root is None else root(out)

    def float_module(self) -> nn.Module:
        """A copy of the user's module with the trained weights, without any fake-quant."""
        model = copy.deepcopy(self.model)
        batchnorms: dict[str, nn.Module] = {}
        _unwrap(model, "", batchnorms)
        for path, bn in batchnorms.items():
            _set_submodule(model, path, bn)
        return model


def _unwrap(parent: nn.Module, prefix: str, batchnorms: dict[str, nn.Module]) -> None:
    for name, child in list(parent.named_children()):
        while isinstance(child, OutputFQ):
            child = child.inner
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(child, QuantConv):
            if child.bn is not None:
                batchnorms[_bn_path_of(parent, name, prefix, child)] = child.bn
            child = child.conv
        elif isinstance(child, QuantLinear):
            child = child.linear
        setattr(parent, name, child)
        _unwrap(child, path, batchnorms)


def _bn_path_of(parent: nn.Module, name: str, prefix: str, conv: QuantConv) -> str:
    path = getattr(conv, "bn_path", None)
    if path is None:
        raise OnnxqError(f"QuantConv at {prefix}.{name} lost its BatchNorm path")
    return str(path)


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent_path) if parent_path else root, name, module)


def prepare_qat(
    module: nn.Module,
    example_inputs: Any,
    qconfig_mapping: QConfigLike | Mapping[str, Any] | ModuleQConfigMapping = "x86",
    *,
    config: QatConfig = QatConfig(),
    dynamo: bool = True,
    opset: int | None = None,
    float_outputs: bool = False,
) -> QatModule:
    """A trainable copy of ``module`` with fake-quant where onnxq's plan puts Q/DQ (see the module
    docstring); ``module`` itself is not changed. ``float_outputs``: as :func:`onnxq.prepare`'s."""
    args = tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    mapping = ModuleQConfigMapping.of(qconfig_mapping)
    model = copy.deepcopy(module)
    proto, used_dynamo = export_for_onnxq(model, args, dynamo=dynamo, opset=opset)
    prepared = prepare(proto, mapping.for_export(proto, model), float_outputs=float_outputs)
    modules = node_modules(proto, model)
    finder = SiteFinder(proto, modules, prepared.model)
    pairs = batchnorm_pairs(proto, modules)
    fake_quants: dict[int, FakeQuantize] = {}
    sites: dict[Site, int] = {}
    for index, group in enumerate(prepared.plan.groups):
        if not group.observed:
            continue
        fake_quants[index] = FakeQuantize(
            group.spec,
            observer=config.observer,
            averaging_constant=config.averaging_constant,
            learnable=config.learnable_scales,
        )
        for value in group.observed:
            sites[finder.site(value)] = index
    bn_paths = _wrap_weights(model, prepared.plan, modules, pairs, fake_quants)
    for site, index in sites.items():
        if site.kind == "output" and site.path:
            _set_submodule(model, site.path, OutputFQ(model.get_submodule(site.path), fake_quants[index]))
    logger.info(
        "prepare_qat: %d weight(s) and %d tensor group(s) fake-quantized", len(bn_paths), len(fake_quants)
    )
    options = {"dynamo": used_dynamo, "opset": opset}
    return QatModule(
        model.train(), fake_quants, sites, bn_paths, args, options, mapping, config, float_outputs
    )


def _wrap_weights(
    model: nn.Module,
    plan: QuantPlan,
    modules: Mapping[str, str],
    pairs: Mapping[str, str],
    fake_quants: Mapping[int, FakeQuantize],
) -> dict[str, str]:
    """Replace each planned weight's module; returns ``{module path: batchnorm path or ""}``. A
    weight whose plan stores an int32 bias gets its input's fake-quant for the bias scale."""
    wrapped: dict[str, str] = {}
    for node, wp in plan.weights.items():
        if node not in modules:
            raise OnnxqError(f"weighted node {node!r} of the plan has no module in the export")
        path = modules[node]
        target = model.get_submodule(path)
        spec = wp.spec
        if spec.observer not in WEIGHT_OBSERVERS or isinstance(wp.granularity, PerBlock):
            raise ConfigError(
                f"prepare_qat: weight of {path!r}: QAT supports min/max weights per tensor or per "
                f"channel, got observer {spec.observer!r} ({type(wp.granularity).__name__})"
            )
        per_channel = not isinstance(wp.granularity, PerTensor)
        quant: _QuantWeighted
        if isinstance(target, nn.Conv2d):
            bn_path = pairs.get(path, "")
            bn = model.get_submodule(bn_path) if bn_path else None
            quant = QuantConv(target, bn if isinstance(bn, nn.BatchNorm2d) else None, spec, per_channel)
            if quant.bn is not None:
                quant.bn_path = bn_path  # type: ignore[assignment]
                _set_submodule(model, bn_path, nn.Identity())
        elif isinstance(target, nn.Linear):
            quant = QuantLinear(target, spec, per_channel)
        else:
            raise ConfigError(
                f"prepare_qat: node {node!r} comes from {type(target).__name__} {path!r}; "
                "QAT handles Conv2d and Linear"
            )
        input_fq = fake_quants.get(plan.group_of.get(wp.activation or "", -1))
        if wp.bias is not None and input_fq is not None:
            quant.quantize_bias_with(input_fq)
        _set_submodule(model, path, quant)
        wrapped[path] = pairs.get(path, "")
    return wrapped


def convert_qat(qat: QatModule) -> onnx.ModelProto:
    """The QDQ model of the trained ``qat`` module, with its fake-quants' scales and zero points."""
    if int(qat.steps) == 0:
        raise ConfigError("convert_qat: the QAT module has not been trained for a single step")
    model = qat.float_module().eval()
    proto, _ = export_for_onnxq(model, qat.example_inputs, **qat.export_options)
    prepared = prepare(proto, qat.mapping.for_export(proto, model), float_outputs=qat.float_outputs)
    finder = SiteFinder(proto, node_modules(proto, model), prepared.model)
    plan = prepared.plan
    groups = list(plan.groups)
    for index, group in enumerate(groups):
        if not group.observed:
            continue
        fqs = {id(fq): fq for v in group.observed if (fq := qat.fake_quant_at(finder.site(v))) is not None}
        if len(fqs) != 1:
            raise OnnxqError(
                f"convert_qat: tensor group of {group.observed[0]!r} has {len(fqs)} fake-quant(s), expected 1"
            )
        scale, zero_point = next(iter(fqs.values())).qparams()
        args = {"scale": scale, "zero_point": zero_point}
        groups[index] = replace(group, spec=replace(group.spec, observer="fixed_qparams", observer_args=args))
    fixed = replace(plan, groups=tuple(groups))
    observers = make_observers(fixed)
    for observer in observers.values():
        observer.update(np.zeros(1, dtype=np.float32))  # reached: the parameters are the trained ones
    return convert(prepared.model, fixed, CalibrationResult(observers, int(qat.steps))).model


__all__ = ["QatConfig", "QatModule", "convert_qat", "prepare_qat"]
