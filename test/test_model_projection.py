# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""BEV projection against hand-computed geometry, and the native-layout turns."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from denseflow_ros.model import analytic_flow, example_intrinsics, get_preset, visibility_mask
from denseflow_ros.model.network import project_to_bev
from denseflow_ros.model.projection import (
    from_native,
    panorama_uv,
    pinhole_uv,
    sample_bev,
    to_native,
)

FX, FY, CX, CY = 74.0, 61.5, 62.8, 14.7  # a KITTI-like camera at a 32 x 128 feature map


def _k(batch: int = 1) -> torch.Tensor:
    return torch.tensor([[FX, 0.0, CX], [0.0, FY, CY], [0.0, 0.0, 1.0]]).expand(batch, 3, 3)


def _coordinate_features(h: int, w: int) -> torch.Tensor:
    # Channel 0 = column, channel 1 = row: bilinear sampling returns the sampled point exactly.
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                          torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.stack([u, v])[None]


def test_pinhole_matches_hand_projection() -> None:
    size, cell, height = 64, 1.6, 1.65
    uv, depth = pinhole_uv(_k(), size, cell, height)
    for row, col in [(32, 40), (20, 60), (45, 33), (32, 63)]:
        forward = (col - 32) * cell  # +u is the vehicle's forward axis, camera at A // 2
        right = (row - 32) * cell  # +v its right
        u = FX * right / forward + CX
        v = FY * height / forward + CY
        assert uv[0, row, col].tolist() == pytest.approx([u, v], rel=1e-5)
        assert float(depth[0, row, col]) == pytest.approx(forward, rel=1e-6)


def test_bev_sampling_hits_the_projected_points_and_masks_the_rest() -> None:
    cfg = get_preset("kitti")
    feats = _coordinate_features(32, 128)
    k_image = _k() * torch.tensor([[8.0], [8.0], [1.0]])  # intrinsics at the 256 x 1024 image
    bev, mask = project_to_bev(cfg, feats, (256, 1024), k_image, 64, cfg.satellite_mpp, 1.65)
    cell = cfg.satellite_mpp * 8
    uv, depth = pinhole_uv(_k(), 64, cell, 1.65)
    inside = (uv[..., 0] >= 0) & (uv[..., 0] <= 127) & (uv[..., 1] >= 0) & (uv[..., 1] <= 31)
    expected = inside & (depth > 0)
    assert torch.equal(mask[:, 0], expected)
    assert expected.sum() > 300
    sel = expected[0]
    assert torch.allclose(bev[0, 0][sel], uv[0, ..., 0][sel], atol=1e-3)
    assert torch.allclose(bev[0, 1][sel], uv[0, ..., 1][sel], atol=1e-3)
    assert torch.all(bev[0][:, ~sel] == 0)
    # Nothing behind the camera (u < c) is visible; the visible wedge opens forward.
    assert not mask[0, 0, :, :32].any()


def test_camera_to_body_shifts_the_camera() -> None:
    # A camera 1 m ahead of the body origin sees the body-frame point f where a camera at the
    # origin sees f - 1: cell col+1 (1.6 m cells -> compare at 1.6 m offsets).
    cell = 1.6
    c2b = torch.eye(4)
    c2b[:3, :3] = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    c2b[0, 3] = cell
    base, _ = pinhole_uv(_k(), 64, cell, 1.65)
    moved, _ = pinhole_uv(_k(), 64, cell, 1.65, camera_to_body=c2b[None])
    assert torch.allclose(moved[0, :, 41:], base[0, :, 40:-1], atol=1e-4)
    # A camera 0.5 m higher above the ground sees the road further down the image.
    higher, _ = pinhole_uv(_k(), 64, cell, 2.15)
    assert torch.all(higher[0, 32, 40:, 1] > base[0, 32, 40:, 1])


def test_native_layout_points_forward_up() -> None:
    # One quarter turn: forward is "up" (decreasing row), right is +u.
    uv, depth = pinhole_uv(_k(), 64, 1.6, 1.65, turns=1)
    ref, _ = pinhole_uv(_k(), 64, 1.6, 1.65, turns=0)
    # Native cell (row 32 - k, col 32 + j) is the package cell (row 32 + j, col 32 + k).
    for k, j in [(8, 0), (20, -5), (3, 7)]:
        assert torch.allclose(uv[0, 32 - k, 32 + j], ref[0, 32 + j, 32 + k])
    assert float(depth[0, 24, 32]) == pytest.approx(8 * 1.6)


def test_panorama_mapping() -> None:
    h, w, size, cell, height = 40, 80, 64, 1.0, 2.0
    uv = panorama_uv(size, cell, height, h, w, 1, torch.device("cpu"))
    centre = size / 2 - 0.5
    # Straight ahead ("up" in the native layout) is the centre column; right is 3/4 across.
    row_up, col = 10, 31
    ahead = uv[0, row_up, col]
    az = math.atan2(row_up - centre, col - centre)
    expected_col = ((-math.pi / 2 + az % (2 * math.pi)) % (2 * math.pi)) / (2 * math.pi) * w
    rng = math.hypot(row_up - centre, col - centre) * cell
    expected_row = math.atan2(rng, -height) / math.pi * h
    assert ahead.tolist() == pytest.approx([expected_col, expected_row], rel=1e-5)
    assert float(ahead[0]) == pytest.approx(w / 2, abs=0.5)
    right = uv[0, 31, 60]
    assert float(right[0]) == pytest.approx(0.75 * w, abs=0.5)
    # Ground rows lie below the horizon (row h / 2), further points closer to it.
    assert torch.all(uv[..., 1] > h / 2)
    assert float(uv[0, 31, 63, 1]) < float(uv[0, 31, 40, 1])


def test_sampling_uses_pixel_centres_and_drops_the_outside() -> None:
    feats = _coordinate_features(4, 6)
    uv = torch.tensor([[[[0.0, 0.0], [5.0, 3.0], [2.25, 1.5], [5.01, 1.0], [-0.2, 2.0]]]])
    out, mask = sample_bev(feats, uv)
    assert mask[0, 0, 0].tolist() == [True, True, True, False, False]
    expected = torch.tensor([[0.0, 0.0], [5.0, 3.0], [2.25, 1.5]])
    assert torch.allclose(out[0, :, 0, :3].T, expected, atol=1e-5)
    assert out[0, :, 0, 3:].abs().sum() == 0


def test_turns_are_exact_permutations_about_the_prior_position() -> None:
    size = 16
    c = size // 2
    img = torch.arange(size * size, dtype=torch.float32).reshape(1, 1, size, size)
    native = to_native(img, 1)
    # Package pixel (u, v) lands on native (v, 2c - u).
    for u, v in [(3, 5), (c, c), (15, 0), (9, 12)]:
        assert float(native[0, 0, 2 * c - u, v]) == float(img[0, 0, v, u])
    assert native[0, 0, 0].abs().sum() == 0
    back = from_native(native, 1)
    assert torch.equal(back[..., 1:], img[..., 1:])
    assert to_native(img, 0) is img


def test_turning_a_flow_field_back() -> None:
    # The native analytic flow of a pose, turned back, is the package flow of the same pose.
    size, mpp = 64, 0.5
    su, sv, yaw = 3.0, -2.0, 12.0
    ours = analytic_flow(su, sv, yaw, size, mpp)
    # In the native layout the package's (u, v) shift reads (v, -u); rotations commute.
    native = analytic_flow(sv, -su, yaw, size, mpp)
    assert torch.allclose(from_native(native, 1, vector=True)[..., 1:], ours[..., 1:], atol=1e-4)


def test_turned_presets_see_the_same_ground() -> None:
    base = get_preset("lite")
    turned = dataclasses.replace(base, native_turns=1)
    k = example_intrinsics(base)
    a, b = visibility_mask(base, k)[0, 0], visibility_mask(turned, k)[0, 0]
    assert a.sum() > 5000
    iou = (a & b).sum() / (a | b).sum()
    assert float(iou) > 0.85
    # Both wedges sit in the same place to within one feature cell; the remaining offset is
    # the cell-to-pixel registration of the upsampled grid, which turns with the layout.
    idx = torch.arange(a.shape[0], dtype=torch.float32)
    c = base.satellite_size // 2
    for m in (a, b):
        w = m.float()
        cu = (w.sum(0) * idx).sum() / w.sum()
        cv = (w.sum(1) * idx).sum() / w.sum()
        assert abs(float(cv) - c) < 8
        assert cu > c + 30
    wa, wb = a.float(), b.float()
    shift_u = (wa.sum(0) * idx).sum() / wa.sum() - (wb.sum(0) * idx).sum() / wb.sum()
    assert abs(float(shift_u)) < 8


@pytest.mark.parametrize("name", ["kitti", "ford", "oxford", "vigor", "lite"])
def test_visibility_lies_ahead_of_the_camera(name: str) -> None:
    cfg = get_preset(name)
    mask = visibility_mask(cfg, example_intrinsics(cfg))[0, 0]
    c = cfg.satellite_size // 2
    if cfg.projection == "panorama":
        # All round: the panorama sees every direction out to the crop's edge.
        assert mask.float().mean() > 0.9
    else:
        assert mask[:, c + 20:].float().mean() > 0.1
        assert not mask[:, : c - 8].any()
