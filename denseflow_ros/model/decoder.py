# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The RAFT-style flow decoder: correlation pyramid, motion encoder, ConvGRU and heads.

Numerics follow the authors' decoder: the all-pairs correlation is divided by sqrt(C), the
pyramid averages by 2, lookups sample a (2r+1)^2 window with ``grid_sample``
(``align_corners=True``, zero padding) in the same channel order, and the convex upsampling
mask is scaled by 0.25.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from denseflow_ros.model.window import Window, dilate, is_empty, support_window, window_conv


class CorrPyramid:
    """All-pairs correlation between two feature maps and its average-pooled pyramid."""

    def __init__(self, fmap1: torch.Tensor, fmap2: torch.Tensor, levels: int, radius: int) -> None:
        b, c, h, w = fmap1.shape
        # In float32 even under autocast, as the authors' mixed-precision runs do.
        fmap1, fmap2 = fmap1.float(), fmap2.float()
        with torch.autocast(device_type=fmap1.device.type, enabled=False):
            corr = torch.bmm(
                fmap1.reshape(b, c, h * w).transpose(1, 2), fmap2.reshape(b, c, h * w)
            )
        corr = corr.reshape(b * h * w, 1, h, w) / float(c) ** 0.5
        self.pyramid = [corr]
        for _ in range(levels - 1):
            corr = F.avg_pool2d(corr, 2, stride=2)
            self.pyramid.append(corr)
        self.radius = radius
        self.shape = (b, h, w)
        d = torch.linspace(-radius, radius, 2 * radius + 1, device=fmap1.device)
        # The window's first index offsets x and its second y (channel = i * (2r+1) + j),
        # the layout the released decoder weights expect.
        di, dj = torch.meshgrid(d, d, indexing="ij")
        self.delta = torch.stack([di, dj], dim=-1).reshape(1, 2 * radius + 1, 2 * radius + 1, 2)

    @property
    def channels(self) -> int:
        """Return the number of channels a lookup produces."""
        return len(self.pyramid) * (2 * self.radius + 1) ** 2

    def __call__(self, coords: torch.Tensor) -> torch.Tensor:
        """Sample the pyramid around ``coords`` (B, 2, H, W) -> (B, channels, H, W)."""
        b, h, w = self.shape
        flat = self._sample(self.pyramid, coords.permute(0, 2, 3, 1).reshape(b * h * w, 2))
        return flat.reshape(b, h, w, -1).permute(0, 3, 1, 2).contiguous()

    def _sample(self, pyramid: list[torch.Tensor], centre: torch.Tensor) -> torch.Tensor:
        # centre (N, 2) for the N rows of ``pyramid`` -> (N, channels)
        n = centre.shape[0]
        centre = centre.reshape(n, 1, 1, 2)
        out = []
        for i, corr in enumerate(pyramid):
            hh, ww = corr.shape[-2:]
            pts = centre / 2**i + self.delta
            scale = torch.tensor([2.0 / (ww - 1), 2.0 / (hh - 1)], device=pts.device)
            grid = pts * scale - 1.0
            sampled = F.grid_sample(corr, grid, mode="bilinear", align_corners=True)
            out.append(sampled.reshape(n, (2 * self.radius + 1) ** 2))
        return torch.cat(out, dim=-1)


class PinnedLookup:
    """Correlation lookups when the cells outside a mask stay at coordinate 0.

    The decoder pins the coordinates of cells the camera does not see at 0 after its first
    iteration, so their lookups never change: they are taken once from the second
    iteration's full lookup and only the visible cells are sampled afterwards (from a copy of
    their rows of the pyramid), giving the same values as a full lookup.
    """

    def __init__(self, corr: CorrPyramid, mask: torch.Tensor) -> None:
        self.corr = corr
        self.rows = torch.nonzero(mask.reshape(-1)).flatten()
        self.pyramid = [level.index_select(0, self.rows) for level in corr.pyramid]
        self.pinned: torch.Tensor | None = None

    def __call__(self, coords: torch.Tensor, iteration: int) -> torch.Tensor:
        """Return the lookup for ``coords`` (B, 2, H, W) at the given iteration (0-based)."""
        if iteration < 1 or self.pinned is None:
            lookup = self.corr(coords)
            if iteration >= 1:
                self.pinned = lookup.permute(0, 2, 3, 1).reshape(-1, lookup.shape[1])
            return lookup
        b, h, w = self.corr.shape
        centre = coords.permute(0, 2, 3, 1).reshape(b * h * w, 2).index_select(0, self.rows)
        flat = self.pinned.index_copy(0, self.rows, self.corr._sample(self.pyramid, centre))
        return flat.reshape(b, h, w, -1).permute(0, 3, 1, 2).contiguous()


class PinnedMotion:
    """Motion features when the cells outside a mask stay at coordinate 0.

    From the second iteration on, out-of-view cells keep their coordinate (0) and flow
    (minus their own position), so their lookups and the motion encoder's output wherever
    its receptive field (5 cells) holds only such cells never change: those are kept from
    the second iteration and only the window around the view is recomputed.
    """

    def __init__(self, corr: CorrPyramid, encoder: MotionEncoder, mask: torch.Tensor) -> None:
        self.lookup = PinnedLookup(corr, mask)
        self.encoder = encoder
        size = (mask.shape[-2], mask.shape[-1])
        self.window = dilate(support_window(mask), 5, size)
        self.pinned: torch.Tensor | None = None

    def __call__(self, coords: torch.Tensor, flow: torch.Tensor, iteration: int) -> torch.Tensor:
        """Return the motion features for ``coords`` and ``flow`` at the given iteration."""
        lookup = self.lookup(coords, iteration)
        if iteration < 2 or self.pinned is None:
            motion = self.encoder(flow, lookup)
            if iteration >= 1:
                self.pinned = motion
            return motion
        motion = self.pinned.clone()
        if not is_empty(self.window):
            (r0, r1), (c0, c1) = self.window
            motion[..., r0:r1, c0:c1] = self.encoder.window(flow, lookup, self.window)
        return motion


class MotionEncoder(nn.Module):
    """Encode the correlation lookup and the current flow; the flow is appended at the end."""

    def __init__(
        self, corr_ch: int, corr_dims: tuple[int, int], flow_dims: tuple[int, int], out_ch: int
    ) -> None:
        super().__init__()
        self.convc1 = nn.Conv2d(corr_ch, corr_dims[0], 1)
        self.convc2 = nn.Conv2d(corr_dims[0], corr_dims[1], 3, padding=1)
        self.convf1 = nn.Conv2d(2, flow_dims[0], 7, padding=3)
        self.convf2 = nn.Conv2d(flow_dims[0], flow_dims[1], 3, padding=1)
        self.conv = nn.Conv2d(corr_dims[1] + flow_dims[1], out_ch - 2, 3, padding=1)

    def forward(self, flow: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        """Return (B, out_ch, H, W) motion features."""
        cor = F.relu(self.convc2(F.relu(self.convc1(corr), inplace=True)), inplace=True)
        flo = F.relu(self.convf2(F.relu(self.convf1(flow), inplace=True)), inplace=True)
        out = F.relu(self.conv(torch.cat([cor, flo], dim=1)), inplace=True)
        return torch.cat([out, flow], dim=1)

    def window(self, flow: torch.Tensor, corr: torch.Tensor, dst: Window) -> torch.Tensor:
        """Return the motion features over ``dst`` only, from full-size flow and lookup."""
        size = (flow.shape[-2], flow.shape[-1])
        full = ((0, size[0]), (0, size[1]))
        fuse_in = dilate(dst, 1, size)  # input window of the fusing 3x3 conv
        branch_in = dilate(fuse_in, 1, size)  # input window of the branches' 3x3 convs
        (r0, r1), (c0, c1) = branch_in
        cor = F.relu(self.convc1(corr[..., r0:r1, c0:c1]), inplace=True)
        cor = F.relu(window_conv(self.convc2, cor, branch_in, fuse_in, size), inplace=True)
        flo = F.relu(window_conv(self.convf1, flow, full, branch_in, size), inplace=True)
        flo = F.relu(window_conv(self.convf2, flo, branch_in, fuse_in, size), inplace=True)
        out = window_conv(self.conv, torch.cat([cor, flo], dim=1), fuse_in, dst, size)
        (r0, r1), (c0, c1) = dst
        return torch.cat([F.relu(out, inplace=True), flow[..., r0:r1, c0:c1]], dim=1)


class SepConvGRU(nn.Module):
    """A ConvGRU run twice: with 1x5 kernels, then with 5x1 kernels.

    Its input is the concatenation [context, motion]. Each gate's convolution over
    [hidden, context, motion] is evaluated as the sum of convolutions over the three parts
    (the same sum, without building the concatenations), and the context part, which does not
    change between iterations, is computed once per forward by :meth:`prepare`.
    """

    def __init__(self, hidden: int, context: int, motion: int) -> None:
        super().__init__()
        ch = hidden + context + motion
        self.hidden, self.context = hidden, context
        self.convz1 = nn.Conv2d(ch, hidden, (1, 5), padding=(0, 2))
        self.convr1 = nn.Conv2d(ch, hidden, (1, 5), padding=(0, 2))
        self.convq1 = nn.Conv2d(ch, hidden, (1, 5), padding=(0, 2))
        self.convz2 = nn.Conv2d(ch, hidden, (5, 1), padding=(2, 0))
        self.convr2 = nn.Conv2d(ch, hidden, (5, 1), padding=(2, 0))
        self.convq2 = nn.Conv2d(ch, hidden, (5, 1), padding=(2, 0))

    def prepare(self, context: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
        """Split the gate weights and apply the context part once; pass the result to forward.

        Returns, per direction: (gate contribution of the context incl. biases, motion
        weights of z|r|q, hidden weights of z|r, hidden weights of q, padding).
        """
        h, c = self.hidden, self.context
        steps = []
        for convz, convr, convq in (
            (self.convz1, self.convr1, self.convq1),
            (self.convz2, self.convr2, self.convq2),
        ):
            w = torch.cat([convz.weight, convr.weight, convq.weight], dim=0)
            bias = torch.cat([convz.bias, convr.bias, convq.bias], dim=0)
            pad = convz.padding
            ctx = F.conv2d(context, w[:, h : h + c], bias, padding=pad)
            steps.append((ctx, w[:, h + c :], w[: 2 * h, :h], w[2 * h :, :h], pad))
        return steps

    def forward(
        self, h: torch.Tensor, motion: torch.Tensor, prepared: list[tuple[torch.Tensor, ...]]
    ) -> torch.Tensor:
        """Return the updated hidden state."""
        n = self.hidden
        for ctx, w_motion, w_hzr, w_hq, pad in prepared:
            x = F.conv2d(motion, w_motion, padding=pad).add_(ctx)
            zr = torch.sigmoid(F.conv2d(h, w_hzr, padding=pad).add_(x[:, : 2 * n]))
            z, r = zr[:, :n], zr[:, n:]
            q = torch.tanh(F.conv2d(r * h, w_hq, padding=pad).add_(x[:, 2 * n :]))
            h = torch.lerp(h, q, z)
        return h


class FlowHead(nn.Module):
    """3x3 conv, ReLU, 3x3 conv to a 2-channel flow update."""

    def __init__(self, in_ch: int, hidden: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, 2, 3, padding=1)

    def forward(self, x: torch.Tensor, window: Window | None = None) -> torch.Tensor:
        """Return the (B, 2, H, W) flow update; with ``window``, zero outside it.

        The decoder discards the update of cells the camera does not see, so it only needs
        it over the view's bounding window.
        """
        if window is None:
            return self.conv2(F.relu(self.conv1(x), inplace=True))
        size = (x.shape[-2], x.shape[-1])
        out = x.new_zeros(x.shape[0], 2, *size)
        if is_empty(window):
            return out
        hidden_win = dilate(window, 1, size)
        y = window_conv(self.conv1, x, ((0, size[0]), (0, size[1])), hidden_win, size)
        (r0, r1), (c0, c1) = window
        out[..., r0:r1, c0:c1] = window_conv(
            self.conv2, F.relu(y, inplace=True), hidden_win, window, size
        )
        return out


class ConfidenceHead(nn.Module):
    """3x3 conv, ReLU, then 3x3, 3x3 and 1x1 convs without activations, then a sigmoid."""

    def __init__(self, in_ch: int, hidden: int, mid: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, mid, 3, padding=1)
        self.conv3 = nn.Conv2d(mid, 1, 3, padding=1)
        self.conv4 = nn.Conv2d(1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the (B, 1, H, W) confidence in (0, 1)."""
        x = self.conv2(F.relu(self.conv1(x), inplace=True))
        return torch.sigmoid(self.conv4(self.conv3(x)))


class UpdateBlock(nn.Module):
    """One decoder iteration's modules: motion encoder, GRU, flow, confidence and mask heads."""

    def __init__(
        self,
        corr_ch: int,
        hidden: int,
        context: int,
        corr_dims: tuple[int, int],
        flow_dims: tuple[int, int],
        motion: int,
        head: int,
        confidence_mid: int,
        stride: int,
    ) -> None:
        super().__init__()
        self.encoder = MotionEncoder(corr_ch, corr_dims, flow_dims, motion)
        self.gru = SepConvGRU(hidden, context, motion)
        self.flow_head = FlowHead(hidden, head)
        self.flow_conf = ConfidenceHead(hidden, head, confidence_mid)
        self.mask = nn.Sequential(
            nn.Conv2d(hidden, head, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(head, stride * stride * 9, 1),
        )

    def forward(
        self,
        net: torch.Tensor,
        context: list[tuple[torch.Tensor, ...]],
        motion: torch.Tensor,
        window: Window | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the new hidden state and the flow update (zero outside ``window``).

        ``context`` is ``self.gru.prepare(inp)`` for the forward's context features and
        ``motion`` the motion encoder's output.
        """
        net = self.gru(net, motion, context)
        return net, self.flow_head(net, window)

    def upsample_mask(self, net: torch.Tensor) -> torch.Tensor:
        """Return the convex-combination logits, scaled by 0.25 to balance gradients."""
        return 0.25 * self.mask(net)


def convex_upsample(flow: torch.Tensor, mask: torch.Tensor, factor: int) -> torch.Tensor:
    """Upsample (B, 2, H, W) flow by ``factor`` as convex combinations of 3x3 neighbours."""
    b, c, h, w = flow.shape
    weights = torch.softmax(mask.reshape(b, 1, 9, factor, factor, h, w), dim=2)
    neigh = F.unfold(factor * flow, [3, 3], padding=1).reshape(b, c, 9, 1, 1, h, w)
    up = torch.sum(weights * neigh, dim=2)
    return up.permute(0, 1, 4, 2, 5, 3).reshape(b, c, factor * h, factor * w)


def upsample_confidence(conf: torch.Tensor, factor: int) -> torch.Tensor:
    """Bilinearly upsample (B, 1, H, W) by ``factor`` with aligned corners."""
    h, w = conf.shape[-2:]
    return F.interpolate(conf, size=(factor * h, factor * w), mode="bilinear", align_corners=True)
