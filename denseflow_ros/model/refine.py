# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The residual refinement encoder used as the flow decoder's feature and context encoders.

A 7x7 conv, normalisation and ReLU at stride 1, ``stages`` stages of two residual blocks
(3x3 conv, norm, ReLU, 3x3 conv, norm, ReLU, identity skip, ReLU) and a 1x1 output conv.
Instance normalisation has no affine parameters; the Oxford context encoder uses batch norm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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


Window = tuple[tuple[int, int], tuple[int, int]]


def support_window(mask: torch.Tensor) -> Window:
    """Return ((row0, row1), (col0, col1)), half-open, bounding every true cell of (B,1,H,W)."""
    rows = torch.nonzero(mask.any(dim=-1).flatten(0, -2).any(dim=0)).flatten()
    cols = torch.nonzero(mask.any(dim=-2).flatten(0, -2).any(dim=0)).flatten()
    if rows.numel() == 0:
        return (0, 0), (0, 0)
    return (int(rows[0]), int(rows[-1]) + 1), (int(cols[0]), int(cols[-1]) + 1)


def sparse_conv(conv: nn.Conv2d, x: torch.Tensor, support: Window) -> torch.Tensor:
    """Stride-1 'same' convolution of ``x`` that is zero outside ``support``.

    Outputs whose kernel window misses the support equal the bias; the others are computed
    from the support (plus the halo) alone.
    """
    (r0, r1), (c0, c1) = support
    h, w = x.shape[-2:]
    kh, kw = conv.kernel_size
    ph, pw = conv.padding
    bias = conv.bias if conv.bias is not None else x.new_zeros(conv.out_channels)
    out = bias.reshape(1, -1, 1, 1).expand(x.shape[0], -1, h, w).contiguous()
    if r1 <= r0 or c1 <= c0:
        return out
    # Output rows/cols that the support can reach, and the input span they need.
    o_r0, o_r1 = max(r0 - (kh - 1 - ph), 0), min(r1 + ph, h)
    o_c0, o_c1 = max(c0 - (kw - 1 - pw), 0), min(c1 + pw, w)
    i_r0, i_r1 = o_r0 - ph, o_r1 + (kh - 1 - ph)
    i_c0, i_c1 = o_c0 - pw, o_c1 + (kw - 1 - pw)
    window = x[..., max(i_r0, 0) : min(i_r1, h), max(i_c0, 0) : min(i_c1, w)]
    window = F.pad(window, (max(-i_c0, 0), max(i_c1 - w, 0), max(-i_r0, 0), max(i_r1 - h, 0)))
    out[..., o_r0:o_r1, o_c0:o_c1] = F.conv2d(window, conv.weight, conv.bias)
    return out
