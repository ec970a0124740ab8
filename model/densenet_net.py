"""The torch module for family ``densenet`` (schema and closed-form count in densenet.py)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from model.densenet import final_size, stages


class Bottleneck(nn.Module):
    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([out, x], 1)


class Transition(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNet(nn.Module):
    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        g = cfg["growth"]
        self.conv1 = nn.Conv2d(3, 2 * g, 3, padding=1, bias=False)
        layers: list[nn.Module] = []
        for n_in, n_out, trans in stages(cfg):
            layers += [Bottleneck(c, g) for c in range(n_in, n_out, g)]
            if trans:
                layers.append(Transition(n_out, trans))
        self.features = nn.Sequential(*layers)
        last = stages(cfg)[-1][1]
        self.bn = nn.BatchNorm2d(last)
        self.pool = final_size(cfg)
        self.fc = nn.Linear(last, cfg["num_classes"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.features(self.conv1(x))))
        return self.fc(torch.flatten(F.avg_pool2d(out, self.pool), 1))
