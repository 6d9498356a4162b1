# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The residual refinement encoder used as the flow decoder's feature and context encoders.

A 7x7 conv, normalisation and ReLU at stride 1, ``stages`` stages of two residual blocks
(3x3 conv, norm, ReLU, 3x3 conv, norm, ReLU, identity skip, ReLU) and a 1x1 output conv.
Instance normalisation has no affine parameters; the Oxford context encoder uses batch norm.
"""

from __future__ import annotations

import torch
from torch import nn

from denseflow_ros.model.window import Window, sparse_conv


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.InstanceNorm2d(channels)


class ResidualBlock(nn.Module):
    """Two 3x3 conv + norm + ReLU with an identity skip and a final ReLU."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm1 = _norm(norm, channels)
        self.norm2 = _norm(norm, channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.relu(self.norm2(self.conv2(y)))
        return self.relu(x + y)


class RefineEncoder(nn.Module):
    """Stride-1 residual encoder from trunk features to ``out_ch`` channels."""

    def __init__(
        self, in_ch: int, dim: int, out_ch: int, stages: int = 3, norm: str = "instance"
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, dim, 7, padding=3)
        self.norm1 = _norm(norm, dim)
        self.relu1 = nn.ReLU(inplace=True)
        for i in range(stages):
            self.add_module(
                f"layer{i + 1}", nn.Sequential(ResidualBlock(dim, norm), ResidualBlock(dim, norm))
            )
        self.stages = stages
        self.conv2 = nn.Conv2d(dim, out_ch, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, support: Window | None = None) -> torch.Tensor:
        """Return the encoded (B, out_ch, H, W) features.

        ``support`` (rows, cols) promises that ``x`` is zero outside that window (the BEV
        outside the camera's view): the first convolution is then evaluated only where its
        kernel reaches the window, the rest of its output being its bias. The result is the
        same as without it.
        """
        return self.body(self.stem(x, support))

    def stem(self, x: torch.Tensor, support: Window | None = None) -> torch.Tensor:
        """Apply the first convolution, see :meth:`forward`."""
        if support is None:
            return self.conv1(x)
        return sparse_conv(self.conv1, x, support)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """Apply everything after the first convolution."""
        x = self.relu1(self.norm1(x))
        for i in range(self.stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.conv2(x)

