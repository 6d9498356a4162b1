# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Exact convolution over part of a feature map, for the parts of the BEV the camera sees.

The BEV grid is mostly outside the camera's view (about 80 % for KITTI). Where a layer's
input is zero there, or its output is discarded there, or it does not change between
decoder iterations there, these helpers evaluate a stride-1 "same" convolution only over a
rectangular window: the results inside the window are those of the full convolution
(zero padding at the map's border included).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# ((row0, row1), (col0, col1)), half-open
Window = tuple[tuple[int, int], tuple[int, int]]


def support_window(mask: torch.Tensor) -> Window:
    """Return the window bounding every true cell of a (B, 1, H, W) mask, over the batch."""
    rows = torch.nonzero(mask.any(dim=-1).flatten(0, -2).any(dim=0)).flatten()
    cols = torch.nonzero(mask.any(dim=-2).flatten(0, -2).any(dim=0)).flatten()
    if rows.numel() == 0:
        return (0, 0), (0, 0)
    return (int(rows[0]), int(rows[-1]) + 1), (int(cols[0]), int(cols[-1]) + 1)


def dilate(window: Window, by: int, size: tuple[int, int]) -> Window:
    """Grow a window by ``by`` cells on every side, clipped to a map of ``size`` (H, W)."""
    (r0, r1), (c0, c1) = window
    if r1 <= r0 or c1 <= c0:
        return window
    return (max(r0 - by, 0), min(r1 + by, size[0])), (max(c0 - by, 0), min(c1 + by, size[1]))


def is_empty(window: Window) -> bool:
    """Return whether the window holds no cell."""
    (r0, r1), (c0, c1) = window
    return r1 <= r0 or c1 <= c0


def window_conv(
    conv: nn.Conv2d, x: torch.Tensor, src: Window, dst: Window, size: tuple[int, int]
) -> torch.Tensor:
    """Evaluate ``conv`` (stride 1, same padding) over ``dst`` only.

    ``x`` holds the input over ``src``, which must cover ``dst`` plus the kernel's halo
    (clipped to the map of ``size``); beyond the map the input is zero, as the convolution's
    own padding. Returns the output over ``dst``.
    """
    (dr0, dr1), (dc0, dc1) = dst
    (sr0, _), (sc0, _) = src
    kh, kw = conv.kernel_size
    ph, pw = conv.padding
    h, w = size
    need_r0, need_r1 = dr0 - ph, dr1 + kh - 1 - ph
    need_c0, need_c1 = dc0 - pw, dc1 + kw - 1 - pw
    piece = x[..., max(need_r0, 0) - sr0 : min(need_r1, h) - sr0,
              max(need_c0, 0) - sc0 : min(need_c1, w) - sc0]
    pad = (max(-need_c0, 0), max(need_c1 - w, 0), max(-need_r0, 0), max(need_r1 - h, 0))
    if any(pad):
        piece = F.pad(piece, pad)
    return F.conv2d(piece, conv.weight, conv.bias)


def sparse_conv(conv: nn.Conv2d, x: torch.Tensor, support: Window) -> torch.Tensor:
    """Full-size ``conv`` of an ``x`` that is zero outside ``support``.

    Outputs whose kernel misses the support equal the bias; the others are computed from the
    support and its halo alone.
    """
    size = (x.shape[-2], x.shape[-1])
    bias = conv.bias if conv.bias is not None else x.new_zeros(conv.out_channels)
    out = bias.reshape(1, -1, 1, 1).expand(x.shape[0], -1, *size).contiguous()
    if is_empty(support):
        return out
    kh, kw = conv.kernel_size
    ph, pw = conv.padding
    (r0, r1), (c0, c1) = support
    # Outputs the support can reach.
    reach = (
        (max(r0 - (kh - 1 - ph), 0), min(r1 + ph, size[0])),
        (max(c0 - (kw - 1 - pw), 0), min(c1 + pw, size[1])),
    )
    full = ((0, size[0]), (0, size[1]))
    (o_r0, o_r1), (o_c0, o_c1) = reach
    out[..., o_r0:o_r1, o_c0:o_c1] = window_conv(conv, x, full, reach, size)
    return out
