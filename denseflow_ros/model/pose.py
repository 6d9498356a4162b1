# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Pose from flow: the differentiable confidence-weighted 2-D rigid fit, and its inverse.

Convention (package-wide): a BEV pixel A maps to the satellite pixel
``B = c + t + R_img(yaw) (A - c)`` with ``c = S // 2``, ``t = (shift_u_m, shift_v_m) / mpp``
and ``R_img(a) = [[cos a, sin a], [-sin a, cos a]]`` (a counter-clockwise turn as displayed,
v pointing down), so ``shift_*`` is the true camera position minus the crop centre and
``yaw`` the true heading minus the prior heading, counter-clockwise positive.
"""

from __future__ import annotations

import math

import torch

# Added to the cross-covariance diagonal, as in the authors' solver, so an empty or
# degenerate mask still gives a finite angle.
_H_EPS = 1e-5
# Variance of a correspondence's position from the pixel grid alone (uniform over a pixel).
_QUANTISATION_VAR_PX2 = 1.0 / 12.0


def _pixel_grid(size: int, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    idx = torch.arange(size, device=device, dtype=dtype)
    v, u = torch.meshgrid(idx, idx, indexing="ij")
    return torch.stack([u, v], dim=0).expand(batch, 2, size, size)


def _per_batch(value: float | torch.Tensor, batch: int, ref: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(value, dtype=ref.dtype, device=ref.device).reshape(-1).expand(batch)


def analytic_flow(
    shift_u_m: float | torch.Tensor,
    shift_v_m: float | torch.Tensor,
    yaw_deg: float | torch.Tensor,
    size_px: int,
    mpp: float | torch.Tensor,
) -> torch.Tensor:
    """Return the (B, 2, S, S) flow of the rigid BEV -> satellite motion of a known pose."""
    ref = torch.as_tensor(shift_u_m, dtype=torch.float32)
    if not ref.is_floating_point():
        ref = ref.float()
    tensors = [torch.as_tensor(x) for x in (shift_u_m, shift_v_m, yaw_deg, mpp)]
    batch = max(t.numel() for t in tensors)
    dev = next((t.device for t in tensors if t.numel() > 0), ref.device)
    ref = ref.to(dev)
    su = _per_batch(shift_u_m, batch, ref)
    sv = _per_batch(shift_v_m, batch, ref)
    yaw = _per_batch(yaw_deg, batch, ref) * (math.pi / 180.0)
    scale = _per_batch(mpp, batch, ref)
    grid = _pixel_grid(size_px, batch, dev, ref.dtype)
    c = float(size_px // 2)
    du, dv = grid[:, 0] - c, grid[:, 1] - c
    cos, sin = torch.cos(yaw)[:, None, None], torch.sin(yaw)[:, None, None]
    bu = (su / scale)[:, None, None] + cos * du + sin * dv
    bv = (sv / scale)[:, None, None] - sin * du + cos * dv
    return torch.stack([bu - du, bv - dv], dim=1)


def solve_pose(
    flow: torch.Tensor,
    confidence: torch.Tensor,
    mask: torch.Tensor,
    mpp: float | torch.Tensor,
    weighted_centroids: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fit the rigid motion of BEV pixels to their flow targets, weighted by confidence.

    ``flow`` (B, 2, S, S), ``confidence`` (B, 1, S, S), ``mask`` (B, 1, S, S) bool; ``mpp``
    a float or (B,). This is weighted least squares: centroids and cross-covariance both
    confidence weighted, so low-confidence outliers barely move either (the authors' KITTI,
    Ford and Oxford solvers take plain means over the mask for the centroids:
    ``weighted_centroids=False`` reproduces that). The rotation is the closed-form 2-D Kabsch
    angle, always a proper rotation (the reflection an unconstrained SVD can return never
    arises), computed with ``atan2`` and true pi. Returns ``shift_u_m, shift_v_m, yaw_deg``
    (B,) and the (B, 3, 3) covariance of (shift_u_m [m], shift_v_m [m], yaw [rad]).
    """
    # Always in float32 or wider, also under autocast: the centroids sum ~1e5 pixels.
    if flow.dtype in (torch.float16, torch.bfloat16):
        flow = flow.float()
    with torch.autocast(device_type=flow.device.type, enabled=False):
        return _solve_pose(flow, confidence, mask, mpp, weighted_centroids)


def _solve_pose(
    flow: torch.Tensor,
    confidence: torch.Tensor,
    mask: torch.Tensor,
    mpp: float | torch.Tensor,
    weighted_centroids: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    b, _, s, _ = flow.shape
    dtype = flow.dtype
    m = mask.to(dtype).reshape(b, 1, -1)
    w = (confidence.to(dtype).reshape(b, 1, -1)) * m
    pa = _pixel_grid(s, b, flow.device, dtype).reshape(b, 2, -1)
    pb = pa + flow.reshape(b, 2, -1)
    cw = w if weighted_centroids else m
    count = cw.sum(-1) + 1e-6  # (B, 1)
    ca = (pa * cw).sum(-1) / count  # (B, 2)
    cb = (pb * cw).sum(-1) / count
    a = (pa - ca[..., None]) * w
    d = pb - cb[..., None]
    h = torch.einsum("bin,bjn->bij", a, d) + _H_EPS * torch.eye(2, dtype=dtype, device=flow.device)
    theta = torch.atan2(h[:, 0, 1] - h[:, 1, 0], h[:, 0, 0] + h[:, 1, 1])
    cos, sin = torch.cos(theta), torch.sin(theta)
    # t = cB - R cA is the fit's translation; the package's shift is where it sends pixel c.
    c = float(s // 2)
    tu = cb[:, 0] - (cos * ca[:, 0] - sin * ca[:, 1]) - c + (cos * c - sin * c)
    tv = cb[:, 1] - (sin * ca[:, 0] + cos * ca[:, 1]) - c + (sin * c + cos * c)
    scale = _per_batch(mpp, b, flow)
    yaw = -theta
    cov = _covariance(pa, pb, w.squeeze(1), tu, tv, yaw, c)
    units = torch.stack([scale, scale, torch.ones_like(scale)], dim=-1).to(cov.dtype)
    cov = cov * units[:, :, None] * units[:, None, :]
    return tu * scale, tv * scale, yaw * (180.0 / math.pi), cov.to(dtype)


def _covariance(
    pa: torch.Tensor,
    pb: torch.Tensor,
    w: torch.Tensor,
    tu: torch.Tensor,
    tv: torch.Tensor,
    yaw: torch.Tensor,
    c: float,
    correlated_px: float = 64.0,
) -> torch.Tensor:
    """Covariance of (t_u [px], t_v [px], yaw [rad]) from the weighted residuals.

    Weighted least squares with relative weights: sigma^2 is the weighted mean squared
    residual per axis (plus the pixel quantisation variance), the information is
    sum w J^T J of the model's Jacobian. The flow comes from a stride-8 grid upsampled to
    pixels, so neighbouring pixels are not independent: the covariance is inflated by the
    number of pixels per feature cell (``correlated_px``). It shrinks as consistent,
    confident correspondences grow in number, and grows with residual spread or fewer of them.
    """
    with torch.no_grad():
        pa, pb, w = pa.double(), pb.double(), w.double()
        yaw = yaw.double()[:, None]
        du, dv = pa[:, 0] - c, pa[:, 1] - c
        cos, sin = torch.cos(yaw), torch.sin(yaw)
        model_u = c + tu.double()[:, None] + cos * du + sin * dv
        model_v = c + tv.double()[:, None] - sin * du + cos * dv
        res2 = (pb[:, 0] - model_u) ** 2 + (pb[:, 1] - model_v) ** 2
        wsum = w.sum(-1)
        n = (w > 0).sum(-1).double()
        sigma2 = (w * res2).sum(-1) / (2.0 * wsum).clamp_min(1e-12)
        sigma2 = sigma2 * (2.0 * n / (2.0 * n - 3.0).clamp_min(1.0)) + _QUANTISATION_VAR_PX2
        gu = -sin * du + cos * dv  # d(model_u)/d(yaw)
        gv = -cos * du - sin * dv
        info = torch.zeros(pa.shape[0], 3, 3, dtype=torch.float64, device=pa.device)
        info[:, 0, 0] = wsum
        info[:, 1, 1] = wsum
        info[:, 0, 2] = info[:, 2, 0] = (w * gu).sum(-1)
        info[:, 1, 2] = info[:, 2, 1] = (w * gv).sum(-1)
        info[:, 2, 2] = (w * (gu * gu + gv * gv)).sum(-1)
        info = info + 1e-9 * torch.eye(3, dtype=torch.float64, device=pa.device)
        cov = torch.linalg.inv(info) * (sigma2 * correlated_px)[:, None, None]
        return 0.5 * (cov + cov.transpose(1, 2))
