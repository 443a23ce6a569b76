"""The PyTorch networks, and nothing else: DeepLOB and an MLP. Both return logits."""

from __future__ import annotations

import torch
from torch import nn


def _conv_block(in_ch: int, out_ch: int, kernel: tuple[int, int], act: type[nn.Module],
                stride: tuple[int, int] = (1, 1), padding: str | int = 0) -> list[nn.Module]:
    act_layer = nn.LeakyReLU(0.01) if act is nn.LeakyReLU else act()
    return [nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding), act_layer,
            nn.BatchNorm2d(out_ch)]


class DeepLOB(nn.Module):
    """Zhang, Zohren & Roberts (2019), as in the authors' public PyTorch notebook.

    Input (batch, 1, T, levels*4) with each level laid out ask_px, ask_sz, bid_px, bid_sz.
    Three convolution blocks fold (price, size) pairs, then sides, then levels; an
    inception module looks at 1-, 3- and 5-step patterns and a pooled path; an LSTM
    reads the resulting sequence. With levels=10 it has 143,907 parameters, like theirs.
    """

    def __init__(self, levels: int = 10, n_classes: int = 3, lstm_hidden: int = 64) -> None:
        super().__init__()
        c = 32
        self.conv1 = nn.Sequential(
            *_conv_block(1, c, (1, 2), nn.LeakyReLU, stride=(1, 2)),   # price x size
            *_conv_block(c, c, (4, 1), nn.LeakyReLU),
            *_conv_block(c, c, (4, 1), nn.LeakyReLU),
        )
        self.conv2 = nn.Sequential(
            *_conv_block(c, c, (1, 2), nn.Tanh, stride=(1, 2)),        # ask x bid
            *_conv_block(c, c, (4, 1), nn.Tanh),
            *_conv_block(c, c, (4, 1), nn.Tanh),
        )
        self.conv3 = nn.Sequential(
            *_conv_block(c, c, (1, levels), nn.LeakyReLU),              # all levels
            *_conv_block(c, c, (4, 1), nn.LeakyReLU),
            *_conv_block(c, c, (4, 1), nn.LeakyReLU),
        )
        self.inception_3 = nn.Sequential(
            *_conv_block(c, 64, (1, 1), nn.LeakyReLU, padding="same"),
            *_conv_block(64, 64, (3, 1), nn.LeakyReLU, padding="same"),
        )
        self.inception_5 = nn.Sequential(
            *_conv_block(c, 64, (1, 1), nn.LeakyReLU, padding="same"),
            *_conv_block(64, 64, (5, 1), nn.LeakyReLU, padding="same"),
        )
        self.inception_pool = nn.Sequential(
            nn.MaxPool2d((3, 1), stride=(1, 1), padding=(1, 0)),
            *_conv_block(c, 64, (1, 1), nn.LeakyReLU, padding="same"),
        )
        self.lstm = nn.LSTM(input_size=192, hidden_size=lstm_hidden, num_layers=1,
                            batch_first=True)
        self.head = nn.Linear(lstm_hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:  # (batch, T, F) -> (batch, 1, T, F)
            x = x.unsqueeze(1)
        x = self.conv3(self.conv2(self.conv1(x)))
        x = torch.cat([self.inception_3(x), self.inception_5(x), self.inception_pool(x)], dim=1)
        x = x.squeeze(3).permute(0, 2, 1)      # (batch, time, 192)
        out, _ = self.lstm(x)
        return self.head(out[:, -1, :])


class MLP(nn.Module):
    """Two hidden layers over the engineered features."""

    def __init__(self, n_features: int, hidden: int = 128, n_classes: int = 3,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(n_features, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden // 2), nn.ReLU(),
            nn.Linear(hidden // 2, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
