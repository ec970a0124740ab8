"""The torch module for family ``resnet`` (its schema and closed-form count live in resnet.py)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from model.resnet import bare_stem, per_layer


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = channels // reduction
        self.down = nn.Conv2d(channels, hidden, 1)
        self.up = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.up(F.relu(self.down(s))))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, kernel: int, skip_kernel: int,
                 dropout: float, se_reduction: int | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(cout, cout, kernel, 1, (kernel - 1) // 2, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.se = SqueezeExcite(cout, se_reduction) if se_reduction else nn.Identity()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, skip_kernel, stride, (skip_kernel - 1) // 2, bias=False),
                nn.BatchNorm2d(cout),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.drop(F.relu(self.bn1(self.conv1(x))))
        out = self.se(self.bn2(self.conv2(out)))
        return F.relu(out + self.shortcut(x))


class PreActBlock(nn.Module):
    """Pre-activation block as in kuangliu's SENet18: BN-ReLU before each conv, the shortcut a
    bare conv on the activated input, SE (if any) on the residual branch before the add."""

    def __init__(self, cin: int, cout: int, stride: int, kernel: int, skip_kernel: int,
                 dropout: float, se_reduction: int | None) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(cout, cout, kernel, 1, (kernel - 1) // 2, bias=False)
        self.se = SqueezeExcite(cout, se_reduction) if se_reduction else nn.Identity()
        self.shortcut: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, skip_kernel, stride, (skip_kernel - 1) // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.drop(F.relu(self.bn2(out))))
        return self.se(out) + shortcut


class ResNet(nn.Module):
    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        L = per_layer(cfg)
        se = cfg["se"]
        c1, f1 = L["channels"][0], L["kernel"][0]
        stem: list[nn.Module] = [nn.Conv2d(3, c1, f1, 1, (f1 - 1) // 2, bias=False)]
        if not bare_stem(cfg):  # kuangliu's PreActResNet leaves the stem conv bare
            stem += [nn.BatchNorm2d(c1), nn.ReLU()]
        if se is not None and se["where"] == "stem":
            stem.append(SqueezeExcite(c1, se["reduction"]))
        self.stem = nn.Sequential(*stem)
        block_se = se["reduction"] if se is not None and se["where"] == "blocks" else None
        block = PreActBlock if cfg.get("preact", False) else BasicBlock
        layers, cin = [], c1
        for i, (blocks, c, f, k) in enumerate(zip(L["blocks"], L["channels"], L["kernel"], L["skip_kernel"])):
            seq = []
            for b in range(blocks):
                seq.append(block(cin, c, 2 if (i > 0 and b == 0) else 1, f, k, cfg["dropout"], block_se))
                cin = c
            layers.append(nn.Sequential(*seq))
        self.layers = nn.Sequential(*layers)
        self.pool = L["final"] if cfg["pool"] == "global" else cfg["pool"]
        pooled = L["final"] // self.pool
        self.fc = nn.Linear(cin * pooled * pooled, cfg["num_classes"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(self.stem(x))
        out = F.avg_pool2d(out, self.pool)
        return self.fc(torch.flatten(out, 1))
