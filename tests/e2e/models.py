"""Small torch models for the 8x8 handwritten digits set (1 x 8 x 8 inputs, 10 classes).

Each is big enough (a few hundred thousand parameters) that int8 weights dominate the file size,
and each carries the structure the quantizer must handle:

- ``DigitsResNet``: Conv + BatchNorm + ReLU, residual Add (identity and 1x1 projection shortcuts),
  a strided stage, global average pooling, a Linear head.
- ``DigitsMobileNetV2``: inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1 linear
  projection), BatchNorm, ReLU6, residual Add when the shape is kept.
- ``DigitsMLP``: Flatten + Linear + ReLU layers.
- ``DigitsLSTM``, ``DigitsGRU``, ``DigitsRNN``, ``DigitsTransformer``: the 8 rows of a digit as 8
  time steps of 8 features, through an LSTM / GRU / tanh RNN (Linear head on the last step) or an
  ``nn.TransformerEncoder`` (mean-pooled): the dynamic-quantization models.
"""

from __future__ import annotations

import torch
from torch import nn

NUM_CLASSES = 10


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]


class BasicBlock(nn.Module):
    """ResNet basic block: conv-bn-relu, conv-bn, + shortcut, relu."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*conv_bn(cin, cout, 3, stride), nn.ReLU(), *conv_bn(cout, cout, 3))
        self.shortcut: nn.Module = (
            nn.Identity() if stride == 1 and cin == cout else nn.Sequential(*conv_bn(cin, cout, 1, stride))
        )
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class DigitsResNet(nn.Module):
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(1, width, 3), nn.ReLU())
        self.stages = nn.Sequential(
            BasicBlock(width, width, 1),
            BasicBlock(width, 2 * width, 2),
            BasicBlock(2 * width, 2 * width, 1),
            BasicBlock(2 * width, 4 * width, 2),
            BasicBlock(4 * width, 4 * width, 1),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand + ReLU6, 3x3 depthwise + ReLU6, 1x1 linear projection."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_residual = stride == 1 and cin == cout
        self.body = nn.Sequential(
            *conv_bn(cin, hidden, 1),
            nn.ReLU6(),
            *conv_bn(hidden, hidden, 3, stride, groups=hidden),
            nn.ReLU6(),
            *conv_bn(hidden, cout, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.use_residual else y


class DigitsMobileNetV2(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(1, 32, 3), nn.ReLU6())
        self.blocks = nn.Sequential(
            InvertedResidual(32, 32, 1, 2),
            InvertedResidual(32, 64, 2, 4),
            InvertedResidual(64, 64, 1, 4),
            InvertedResidual(64, 160, 2, 4),
            InvertedResidual(160, 320, 1, 4),
        )
        self.head = nn.Sequential(*conv_bn(320, 1280, 1), nn.ReLU6())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(1280, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.head(self.blocks(self.stem(x)))), 1))


class DigitsMLP(nn.Module):
    def __init__(self, hidden: int = 512) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, NUM_CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


MODELS: dict[str, type[nn.Module]] = {
    "resnet": DigitsResNet,
    "mobilenetv2": DigitsMobileNetV2,
    "mlp": DigitsMLP,
}


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class _RowSequence(nn.Module):
    """A classifier reading a digit's 8 rows as 8 time steps of 8 features: (B, 1, 8, 8) -> (B, 8, 8)."""

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], 8, 8)


class DigitsLSTM(_RowSequence):
    """LSTM over the rows, Linear head on the last hidden state (the weights dominate the file)."""

    cell: type[nn.Module] = nn.LSTM

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.rnn = self.cell(8, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(self.rows(x))
        return self.fc(y[:, -1])


class DigitsGRU(DigitsLSTM):
    cell = nn.GRU


class DigitsRNN(DigitsLSTM):
    """A plain tanh RNN; 256 hidden units so that its one recurrent matrix outweighs the biases."""

    cell = nn.RNN

    def __init__(self, hidden: int = 256) -> None:
        super().__init__(hidden)


class DigitsTransformer(_RowSequence):
    """nn.TransformerEncoder (multi-head attention, LayerNorm, GELU) over the rows, mean-pooled."""

    def __init__(self, d_model: int = 192, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Linear(8, d_model)
        self.position = nn.Parameter(torch.zeros(1, 8, d_model))
        layer = nn.TransformerEncoderLayer(
            d_model, 4, 2 * d_model, dropout=0.0, activation="gelu", batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.fc = nn.Linear(d_model, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.encoder(self.embed(self.rows(x)) + self.position).mean(dim=1))


MODELS.update({"lstm": DigitsLSTM, "gru": DigitsGRU, "rnn": DigitsRNN, "transformer": DigitsTransformer})
