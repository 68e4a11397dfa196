"""onnxq.torch.quantize_static on a module left in training mode: a warning, the model of its
eval mode (dropout off, BatchNorm on its running statistics), and the module given back in the
mode it came in."""

from __future__ import annotations

import logging

import pytest

torch = pytest.importorskip("torch")
oqt = pytest.importorskip("onnxq.torch")
nn = torch.nn

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning"
)


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.5),
                        nn.Flatten(), nn.Linear(8 * 6 * 6, 4))  # fmt: skip
    with torch.no_grad():  # running statistics unlike a batch's, so train and eval modes differ
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2)
    return net


def test_a_module_in_training_mode_is_quantized_as_in_eval_mode_with_a_warning(caplog) -> None:  # type: ignore[no-untyped-def]
    x = torch.randn(16, 3, 6, 6)
    calib = [x[i : i + 8] for i in range(0, 16, 8)]
    trained = _net().train()
    with caplog.at_level(logging.WARNING, logger="onnxq.torch.quantize"):
        from_train = oqt.quantize_static(trained, x[:2], calib, "x86", dynamo=False)
    assert any("is in training mode; it is exported in eval mode" in r.getMessage() for r in caplog.records)
    assert trained.training  # the user's module is left in the mode it was given in
    from_eval = oqt.quantize_static(_net().eval(), x[:2], calib, "x86", dynamo=False)
    assert from_train.SerializeToString() == from_eval.SerializeToString()
    assert not any(n.op_type in ("Dropout", "BatchNormalization") for n in from_train.graph.node)
