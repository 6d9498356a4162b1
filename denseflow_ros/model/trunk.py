# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The image trunks: a ResNet-18 stem, layer1 and layer2, then a new stride-1 layer3.

Parameter names follow torchvision's ResNet (``conv1``, ``bn1``, ``layerN.i.conv1`` ...,
``layerN.0.downsample.0/1``) so ImageNet weights and the authors' checkpoints map one to one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(x: torch.Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> torch.Tensor:
    """Apply conv then batch norm; with frozen statistics, as one conv with folded weights."""
    if bn.training:
        return bn(conv(x))
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    weight = conv.weight * scale.reshape(-1, 1, 1, 1)
    bias = bn.bias - bn.running_mean * scale
    return F.conv2d(x, weight, bias, conv.stride, conv.padding)


class BasicBlock(nn.Module):
    """A ResNet basic block: two 3x3 conv + BN, identity (or 1x1 conv + BN) skip."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        if self.downsample is None:
            identity = x
        else:
            identity = conv_bn(x, self.downsample[0], self.downsample[1])
        out = self.relu(conv_bn(x, self.conv1, self.bn1))
        out = conv_bn(out, self.conv2, self.bn2)
        return self.relu(out + identity)


def _layer(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    return nn.Sequential(BasicBlock(in_ch, out_ch, stride), BasicBlock(out_ch, out_ch, 1))


class Trunk(nn.Module):
    """Stride-8 feature extractor: 7x7/2 stem, 3x3/2 max pool, layer1, layer2/2, layer3/1.

    With the default widths this is ResNet-18 up to layer2 followed by the network's own
    layer3 (128 -> 256 channels at stride 1, 1x1 conv + BN on the skip for the width change).
    Input RGB in [0, 1] without mean/std normalisation, as the authors trained it.
    ``stride=4`` runs layer2 at stride 1 (same parameters, twice the output resolution).
    """

    def __init__(self, widths: tuple[int, int, int, int] = (64, 64, 128, 256),
                 stride: int = 8) -> None:
        super().__init__()
        if stride not in (4, 8):
            raise ValueError(f"a trunk's stride must be 4 or 8, not {stride}")
        stem, w1, w2, w3 = widths
        self.conv1 = nn.Conv2d(3, stem, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _layer(stem, w1, 1)
        self.layer2 = _layer(w1, w2, stride // 4)
        self.layer3 = _layer(w2, w3, 1)
        self.out_channels = w3
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return (B, C, H/s, W/s) features of a (B, 3, H, W) image (s: the stride)."""
        # Channels-last runs the stem convolution and max pool several times faster on CPU;
        # the features leave in the default layout for the sampling and refinement stages.
        x = x.contiguous(memory_format=torch.channels_last)
        x = self.maxpool(self.relu(conv_bn(x, self.conv1, self.bn1)))
        return self.layer3(self.layer2(self.layer1(x))).contiguous()
