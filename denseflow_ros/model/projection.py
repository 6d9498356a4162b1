# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Ground features -> bird's-eye view on the satellite feature grid, and layout turns.

The BEV grid is A x A cells of ``cell_m`` metres, the camera (or vehicle body origin) at cell
A // 2 (VIGOR: A / 2 - 0.5). In the package layout the vehicle's forward axis is +u and its
right +v; presets trained with the forward axis pointing up (Ford, VIGOR, Oxford) run in that
"native" layout, one counter-clockwise quarter turn about pixel (S // 2, S // 2) away; the
turn is an exact pixel permutation (one border row/column falls outside and is zero).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# OpenCV camera axes (x right, y down, z forward) expressed in the FRD body frame
# (x forward, y right, z down): the default camera looks along the vehicle's forward axis.
CAMERA_TO_BODY_ROTATION = ((0.0, 0.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0))


def bev_body_coords(size: int, cell_m: float, turns: int, half_cell: bool,
                    device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (forward_m, right_m), each (A, A), of the BEV cells in the given layout."""
    centre = size / 2 - 0.5 if half_cell else float(size // 2)
    idx = torch.arange(size, dtype=torch.float32, device=device)
    rows, cols = torch.meshgrid(idx, idx, indexing="ij")
    if turns == 0:
        return (cols - centre) * cell_m, (rows - centre) * cell_m
    return (centre - rows) * cell_m, (cols - centre) * cell_m


def pinhole_uv(
    intrinsics: torch.Tensor,
    size: int,
    cell_m: float | torch.Tensor,
    ground_depth_m: float | torch.Tensor,
    turns: int = 0,
    camera_to_body: torch.Tensor | None = None,
    half_cell: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project every BEV cell's ground point into a pinhole image.

    ``intrinsics`` (B, 3, 3) are for the image being sampled (the ground feature map);
    ``ground_depth_m`` is the ground plane's depth below the body origin (the camera height
    when the camera sits at the origin); ``camera_to_body`` (B, 4, 4) maps OpenCV camera
    coordinates into the FRD body frame (default: camera at the origin looking forward).
    Returns uv (B, A, A, 2) in pixels and the depth (B, A, A) along the optical axis.
    """
    b = intrinsics.shape[0]
    dev, dtype = intrinsics.device, intrinsics.dtype
    fwd, right = bev_body_coords(size, 1.0, turns, half_cell, dev)
    cell = torch.as_tensor(cell_m, dtype=dtype, device=dev).reshape(-1, 1, 1).expand(b, 1, 1)
    depth = torch.as_tensor(ground_depth_m, dtype=dtype, device=dev).reshape(-1, 1, 1)
    pts = torch.stack(
        [fwd * cell, right * cell, depth.expand(b, size, size)], dim=-1
    )  # (B, A, A, 3) body FRD
    if camera_to_body is None:
        rot = torch.tensor(CAMERA_TO_BODY_ROTATION, dtype=dtype, device=dev).expand(b, 3, 3)
        trans = torch.zeros(b, 3, dtype=dtype, device=dev)
    else:
        c2b = camera_to_body.to(dtype).expand(b, 4, 4)
        rot, trans = c2b[:, :3, :3], c2b[:, :3, 3]
    # camera = R^T (body - T); then pixels = K camera.
    proj = intrinsics @ rot.transpose(1, 2)
    cam = torch.einsum("bij,bhwj->bhwi", proj, pts - trans[:, None, None, :])
    z = cam[..., 2:]
    uv = cam[..., :2] / torch.clamp(z, min=1e-6)
    return uv, z[..., 0]


def panorama_uv(
    size: int,
    cell_m: float | torch.Tensor,
    camera_height_m: float | torch.Tensor,
    height: int,
    width: int,
    batch: int,
    device: torch.device,
) -> torch.Tensor:
    """Map every BEV cell (native layout, forward up) to an equirectangular panorama pixel.

    Column from the azimuth (forward at the centre column, clockwise to the right), row from
    ``atan2(range, -camera_height)`` (the nadir at the bottom row, the horizon in the middle);
    the camera sits at cell A / 2 - 0.5. Returns (B, A, A, 2).
    """
    centre = size / 2 - 0.5
    idx = torch.arange(size, dtype=torch.float32, device=device)
    rows, cols = torch.meshgrid(idx, idx, indexing="ij")
    dr, dc = rows - centre, cols - centre
    theta = torch.atan2(dr, dc)
    theta = (-math.pi / 2 + theta % (2 * math.pi)) % (2 * math.pi)
    col = (theta / (2 * math.pi) * width).expand(batch, size, size)
    cell = torch.as_tensor(cell_m, dtype=torch.float32, device=device).reshape(-1, 1, 1)
    ground = torch.as_tensor(camera_height_m, dtype=torch.float32, device=device)
    rng = torch.sqrt(dr**2 + dc**2) * cell
    row = torch.atan2(rng, -ground.reshape(-1, 1, 1).expand_as(rng)) / math.pi * height
    return torch.stack([col, row.expand(batch, size, size)], dim=-1)


def sample_bev(features: torch.Tensor, uv: torch.Tensor,
               in_front: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinearly sample (B, C, H, W) features at uv (B, A, A, 2) pixel coordinates.

    Pixel coordinates are integers at pixel centres (``align_corners=True``). The mask is
    true where the point lies inside [0, W-1] x [0, H-1] (and in front of the camera when
    ``in_front`` is given); features outside the mask are zero. Returns (B, C, A, A) features
    and the (B, 1, A, A) bool mask, which carries no gradient.
    """
    h, w = features.shape[-2:]
    u, v = uv[..., 0], uv[..., 1]
    mask = (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
    if in_front is not None:
        mask = mask & in_front
    grid = torch.stack([2.0 * u / (w - 1) - 1.0, 2.0 * v / (h - 1) - 1.0], dim=-1)
    out = F.grid_sample(features, grid.to(features.dtype), mode="bilinear", align_corners=True)
    mask = mask.unsqueeze(1)
    return out * mask.to(out.dtype), mask


def to_native(image: torch.Tensor, turns: int) -> torch.Tensor:
    """Turn a package-layout (B, C, S, S) crop into the preset's native layout.

    One turn maps pixel (u, v) to (v, 2c - u) with c = S // 2: counter-clockwise as displayed,
    about the prior position, so the package's +u (forward) becomes "up". Row 0 of the
    result has no source pixel and is zero.
    """
    if turns == 0:
        return image
    t = image.transpose(-1, -2).flip(-2)
    return torch.cat([torch.zeros_like(t[..., :1, :]), t[..., :-1, :]], dim=-2)


def from_native(field: torch.Tensor, turns: int, vector: bool = False) -> torch.Tensor:
    """Turn a native-layout (B, C, S, S) field back into the package layout.

    Inverse of :func:`to_native`; with ``vector`` the two channels are a (du, dv) vector and
    are turned too. Column 0 of the result has no source pixel and is zero.
    """
    if turns == 0:
        return field
    t = field.transpose(-1, -2).flip(-1)
    out = torch.cat([torch.zeros_like(t[..., :1]), t[..., :-1]], dim=-1)
    if vector:
        out = torch.stack([-out[:, 1], out[:, 0]], dim=1)
    return out
