# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Flow decoder pieces: correlation lookup layout, the exact shortcuts inference takes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from denseflow_ros.model.decoder import (
    CorrPyramid,
    FlowHead,
    MotionEncoder,
    PinnedLookup,
    PinnedMotion,
    SepConvGRU,
    convex_upsample,
    upsample_confidence,
)
from denseflow_ros.model.window import sparse_conv, support_window


def test_lookup_channel_layout_and_scaling() -> None:
    # fmap2 holds a known map V(y, x) = 100 y + x in channel 0; fmap1 = e0: corr = V / sqrt(C)
    # would be divided by sqrt(C), so V is pre-multiplied by it.
    c, a = 16, 32
    v = 100.0 * torch.arange(a)[:, None] + torch.arange(a)[None, :]
    fmap1 = torch.zeros(1, c, a, a)
    fmap1[:, 0] = 1.0
    fmap2 = torch.zeros(1, c, a, a)
    fmap2[:, 0] = v * c**0.5
    corr = CorrPyramid(fmap1, fmap2, levels=2, radius=2)
    assert corr.channels == 2 * 25
    coords = torch.zeros(1, 2, a, a)
    coords[:, 0], coords[:, 1] = 10.0, 20.0  # every cell looks at x = 10, y = 20
    out = corr(coords)[0, :, 0, 0]
    # Channel i * 5 + j samples x + d_i, y + d_j (the window's first index moves x).
    for i in range(5):
        for j in range(5):
            assert float(out[i * 5 + j]) == pytest.approx(100 * (20 + j - 2) + (10 + i - 2))
    # Level 1 averages 2x2 blocks; its centre is the coordinate halved.
    level1 = out[25:]
    pooled = torch.nn.functional.avg_pool2d(v[None, None], 2)[0, 0]
    assert float(level1[2 * 5 + 2]) == pytest.approx(float(pooled[10, 5]))
    # Outside the volume the lookup reads zeros.
    coords[:, 0] = -5.0
    assert float(corr(coords)[0, 0, 0, 0]) == 0.0


def test_pinned_lookup_matches_full_lookup() -> None:
    gen = torch.Generator().manual_seed(0)
    a = 16
    fmap1, fmap2 = torch.randn(2, 1, 8, a, a, generator=gen)
    corr = CorrPyramid(fmap1, fmap2, levels=3, radius=3)
    mask = torch.zeros(1, 1, a, a, dtype=torch.bool)
    mask[..., 3:9, 8:15] = True
    pinned = PinnedLookup(corr, mask)
    idx = torch.arange(a, dtype=torch.float32)
    gv, gu = torch.meshgrid(idx, idx, indexing="ij")
    coords = torch.stack([gu, gv])[None]
    for it in range(4):
        assert torch.equal(pinned(coords, it), corr(coords))
        coords = (coords + torch.randn(coords.shape, generator=gen)) * mask
    assert pinned.pinned is not None


@pytest.mark.parametrize("kernel", [7, 3])
def test_sparse_conv_equals_dense(kernel: int) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 4, kernel, padding=kernel // 2)
    for rows, cols in [((6, 59), (36, 64)), ((0, 30), (4, 59)), ((10, 12), (0, 3)),
                       ((0, 64), (0, 64)), ((3, 3), (5, 5))]:
        x = torch.zeros(2, 6, 64, 64)
        x[..., rows[0]:rows[1], cols[0]:cols[1]] = torch.randn(
            2, 6, rows[1] - rows[0], cols[1] - cols[0])
        assert torch.allclose(sparse_conv(conv, x, (rows, cols)), conv(x), atol=1e-5)


def test_support_window_bounds_every_sample() -> None:
    mask = torch.zeros(2, 1, 10, 12, dtype=torch.bool)
    mask[0, 0, 2, 3] = True
    mask[1, 0, 7, 9] = True
    assert support_window(mask) == ((2, 8), (3, 10))
    assert support_window(torch.zeros_like(mask)) == ((0, 0), (0, 0))


def _reference_gru(gru: SepConvGRU, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # The textbook separable ConvGRU over the concatenated input [h, x].
    for convz, convr, convq in ((gru.convz1, gru.convr1, gru.convq1),
                                (gru.convz2, gru.convr2, gru.convq2)):
        hx = torch.cat([h, x], dim=1)
        z = torch.sigmoid(convz(hx))
        r = torch.sigmoid(convr(hx))
        q = torch.tanh(convq(torch.cat([r * h, x], dim=1)))
        h = (1 - z) * h + z * q
    return h


def test_gru_with_prepared_context_equals_the_concatenated_form() -> None:
    torch.manual_seed(0)
    gru = SepConvGRU(hidden=8, context=6, motion=5)
    h = torch.tanh(torch.randn(2, 8, 9, 11))
    ctx = torch.relu(torch.randn(2, 6, 9, 11))
    motion = torch.randn(2, 5, 9, 11)
    got = gru(h, motion, gru.prepare(ctx))
    assert torch.allclose(got, _reference_gru(gru, h, torch.cat([ctx, motion], 1)), atol=1e-6)


def test_upsampling() -> None:
    flow = torch.full((1, 2, 4, 5), 1.5)
    mask = torch.randn(1, 9 * 64, 4, 5)
    up = convex_upsample(flow, mask, 8)
    assert up.shape == (1, 2, 32, 40)
    # Convex weights of a constant field, scaled to the finer pixels (border cells mix in
    # the zero padding).
    assert torch.allclose(up[..., 8:24, 8:32], torch.full_like(up[..., 8:24, 8:32], 12.0))
    conf = torch.rand(1, 1, 4, 5)
    cu = upsample_confidence(conf, 8)
    assert cu.shape == (1, 1, 32, 40)
    assert float(cu[0, 0, 0, 0]) == pytest.approx(float(conf[0, 0, 0, 0]))
    assert float(cu[0, 0, -1, -1]) == pytest.approx(float(conf[0, 0, -1, -1]))


def _pinned_setup() -> tuple[CorrPyramid, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    a = 24
    fmap1, fmap2 = torch.randn(2, 1, 8, a, a, generator=gen)
    corr = CorrPyramid(fmap1, fmap2, levels=3, radius=2)
    mask = torch.zeros(1, 1, a, a, dtype=torch.bool)
    mask[..., 2:14, 15:24] = True  # touches the map's right border
    mask[..., 5, 18] = False
    idx = torch.arange(a, dtype=torch.float32)
    gv, gu = torch.meshgrid(idx, idx, indexing="ij")
    return corr, mask, torch.stack([gu, gv])[None]


def test_pinned_motion_matches_the_full_encoder() -> None:
    torch.manual_seed(0)
    corr, mask, coords0 = _pinned_setup()
    encoder = MotionEncoder(corr.channels, (16, 12), (8, 6), 10)
    pinned = PinnedMotion(corr, encoder, mask)
    gen = torch.Generator().manual_seed(2)
    coords = coords0.clone()
    for it in range(5):
        flow = coords - coords0
        full = encoder(flow, corr(coords))
        assert torch.allclose(pinned(coords, flow, it), full, atol=1e-5)
        coords = (coords + torch.randn(coords.shape, generator=gen)) * mask


def test_windowed_flow_head_matches_inside_the_window() -> None:
    torch.manual_seed(0)
    head = FlowHead(6, 10)
    x = torch.randn(2, 6, 20, 20)
    full = head(x)
    for window in [((3, 12), (10, 20)), ((0, 20), (0, 20)), ((0, 1), (19, 20))]:
        got = head(x, window)
        (r0, r1), (c0, c1) = window
        assert torch.allclose(got[..., r0:r1, c0:c1], full[..., r0:r1, c0:c1], atol=1e-5)
        outside = torch.ones(20, 20, dtype=torch.bool)
        outside[r0:r1, c0:c1] = False
        assert torch.all(got[..., outside] == 0)
    assert torch.all(head(x, ((4, 4), (0, 0))) == 0)
