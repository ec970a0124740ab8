"""The torch module for family ``mobilenet`` (schema and closed-form count in mobilenet.py)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from model.mobilenet import FINAL, STEM, layout
from model.widths import scaled


class Block(nn.Module):
    """Depthwise 3x3 conv then pointwise 1x1 conv, each followed by BN and ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv2 = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)))


class MobileNet(nn.Module):
    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        stem = scaled(STEM, cfg["width"])
        self.conv1 = nn.Conv2d(3, stem, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.layers = nn.Sequential(*(Block(cin, c, s) for cin, c, s in layout(cfg)))
        self.fc = nn.Linear(layout(cfg)[-1][1], cfg["num_classes"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.avg_pool2d(out, FINAL), 1))
