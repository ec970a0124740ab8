"""The torch module for family ``googlenet`` (schema and closed-form count in googlenet.py)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from model.googlenet import STEM, blocks, sizes
from model.widths import scaled


def conv_bn(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=(k - 1) // 2), nn.BatchNorm2d(cout), nn.ReLU(True))


class Inception(nn.Module):
    def __init__(self, cin: int, n1: int, r3: int, n3: int, r5: int, n5: int, pp: int, k: int) -> None:
        super().__init__()
        self.b1 = conv_bn(cin, n1, 1)
        self.b2 = nn.Sequential(conv_bn(cin, r3, 1), conv_bn(r3, n3, k))
        # kuangliu's "5x5" branch: two stacked k x k convs
        self.b3 = nn.Sequential(conv_bn(cin, r5, 1), conv_bn(r5, n5, k), conv_bn(n5, n5, k))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), conv_bn(cin, pp, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


class GoogLeNet(nn.Module):
    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        stem = scaled(STEM, cfg["width"])
        self.stem = conv_bn(3, stem, cfg["stem_kernel"])
        mp, ap = cfg["max_pool"], cfg["avg_pool"]
        layers: list[nn.Module] = []
        cin = stem
        for b in blocks(cfg):
            if b == "pool":
                layers.append(nn.MaxPool2d(mp["kernel"], stride=2, padding=mp["padding"]))
                continue
            layers.append(Inception(cin, *b, k=cfg["kernel"]))
            n1, _, n3, _, n5, pp = b
            cin = n1 + n3 + n5 + pp
        self.body = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d(ap["kernel"], stride=1, padding=ap["padding"])
        pooled = sizes(cfg)[1]
        self.fc = nn.Linear(cin * pooled * pooled, cfg["num_classes"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pool(self.body(self.stem(x)))
        return self.fc(torch.flatten(out, 1))
