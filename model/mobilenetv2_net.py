"""The torch module for family ``mobilenetv2`` (schema and closed-form count in mobilenetv2.py)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from model.mobilenetv2 import FINAL, HEAD, STEM, layout
from model.widths import scaled


class Block(nn.Module):
    """Inverted residual: 1x1 expand, k x k depthwise, 1x1 linear projection."""

    def __init__(self, cin: int, cout: int, expansion: int, stride: int, k: int) -> None:
        super().__init__()
        hidden = expansion * cin
        self.stride = stride
        self.conv1 = nn.Conv2d(cin, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.conv2 = nn.Conv2d(hidden, hidden, k, stride, (k - 1) // 2, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.conv3 = nn.Conv2d(hidden, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride == 1 and cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return out + self.shortcut(x) if self.stride == 1 else out


class MobileNetV2(nn.Module):
    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        stem, head = scaled(STEM, cfg["width"]), scaled(HEAD, cfg["width"])
        self.conv1 = nn.Conv2d(3, stem, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        blocks = [Block(cin, c, e, s, cfg["kernel"]) for cin, c, s, e in layout(cfg)]
        self.layers = nn.Sequential(*blocks)
        cin = layout(cfg)[-1][1]
        self.conv2 = nn.Conv2d(cin, head, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(head)
        self.fc = nn.Linear(head, cfg["num_classes"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(self.layers(out))))
        out = F.avg_pool2d(out, FINAL)
        return self.fc(torch.flatten(out, 1))
