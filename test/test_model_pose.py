# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Pose solver and analytic flow: sign conventions, round trips, robustness, covariance."""

from __future__ import annotations

import math

import pytest
import torch

from denseflow_ros.model import (
    PRESETS,
    analytic_flow,
    example_intrinsics,
    get_preset,
    solve_pose,
    visibility_mask,
)

POSES = [(3.0, -7.5, 8.0), (-12.0, 4.0, -9.5), (0.0, 0.0, 0.0), (19.0, 18.0, 175.0)]


def _preset_mask(name: str) -> tuple[torch.Tensor, float, int]:
    cfg = get_preset(name)
    mask = visibility_mask(cfg, example_intrinsics(cfg))
    return mask, cfg.satellite_mpp, cfg.satellite_size


def test_analytic_flow_follows_the_documented_convention() -> None:
    # S=512, c=256, mpp=0.5: 10 m forward, yaw +90 deg (CCW, forward turns to "up").
    flow = analytic_flow(10.0, 0.0, 90.0, 512, 0.5)
    c = 256
    # BEV pixel 10 px ahead of the camera: B = c + (20, 0) + R_img(90)(10, 0) = c + (20, -10).
    du, dv = flow[0, :, c, c + 10].tolist()
    assert (c + 10 + du, c + dv) == pytest.approx((c + 20, c - 10), abs=1e-4)
    # The camera pixel itself moves by the shift only.
    assert flow[0, :, c, c].tolist() == pytest.approx([20.0, 0.0], abs=1e-4)
    # Lateral shift: +v is the vehicle's right, v grows downward.
    flow = analytic_flow(0.0, 3.0, 0.0, 512, 0.5)
    assert flow[0, :, 100, 400].tolist() == pytest.approx([0.0, 6.0], abs=1e-5)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_exact_flow_round_trip_for_every_preset_geometry(name: str) -> None:
    mask, mpp, size = _preset_mask(name)
    assert mask.sum() > 1000, "the preset's camera sees too little of the grid"
    for su, sv, yaw in POSES:
        flow = analytic_flow(su, sv, yaw, size, mpp)
        conf = torch.ones(1, 1, size, size)
        out_u, out_v, out_yaw, cov = solve_pose(flow, conf, mask, mpp)
        assert float(out_u) == pytest.approx(su, abs=1e-3)
        assert float(out_v) == pytest.approx(sv, abs=1e-3)
        err = (float(out_yaw) - yaw + 180.0) % 360.0 - 180.0
        assert abs(err) < 0.01
        assert cov.shape == (1, 3, 3)
        assert torch.all(torch.linalg.eigvalsh(cov.double()) > 0)


def _noisy_case(
    mask: torch.Tensor, size: int, mpp: float, pose: tuple[float, float, float],
    noise_px: float, outlier_fraction: float, seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    flow = analytic_flow(*pose, size, mpp)
    flow = flow + noise_px * torch.randn(flow.shape, generator=gen)
    conf = torch.ones(1, 1, size, size)
    if outlier_fraction:
        pick = (torch.rand(1, 1, size, size, generator=gen) < outlier_fraction) & mask
        # Outliers all pulled the same way, so they bias any fit that trusts them.
        junk = 40.0 + 20.0 * torch.rand(1, 2, size, size, generator=gen)
        flow = torch.where(pick.expand_as(flow), junk, flow)
        conf = torch.where(pick, torch.full_like(conf, 1e-4), conf)
    return flow, conf


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_noise_and_downweighted_outliers_round_trip(name: str) -> None:
    mask, mpp, size = _preset_mask(name)
    pose = (-6.0, 9.0, 7.0)
    # A quarter-pixel of independent noise on every pixel, 30 % of the pixels replaced by
    # outliers all pulled the same way but given 1e-4 of an inlier's confidence.
    flow, conf = _noisy_case(mask, size, mpp, pose, noise_px=0.25, outlier_fraction=0.3)
    out_u, out_v, out_yaw, cov = solve_pose(flow, conf, mask, mpp)
    err = torch.tensor([float(out_u) - pose[0], float(out_v) - pose[1],
                        math.radians(float(out_yaw) - pose[2])])
    assert abs(float(err[0])) < 5e-3 and abs(float(err[1])) < 5e-3
    assert abs(math.degrees(float(err[2]))) < 0.01
    # The reported uncertainty covers the actual error.
    assert torch.all(err.abs() < 3 * cov[0].diagonal().sqrt())


def test_plain_mean_centroids_are_pulled_by_outliers() -> None:
    # The authors' KITTI solver (plain centroids over the mask) is what weighting fixes.
    mask, mpp, size = _preset_mask("kitti")
    pose = (-6.0, 9.0, 7.0)
    flow, conf = _noisy_case(mask, size, mpp, pose, noise_px=0.0, outlier_fraction=0.3)
    fixed = solve_pose(flow, conf, mask, mpp)
    plain = solve_pose(flow, conf, mask, mpp, weighted_centroids=False)
    err_fixed = math.hypot(float(fixed[0]) - pose[0], float(fixed[1]) - pose[1])
    err_plain = math.hypot(float(plain[0]) - pose[0], float(plain[1]) - pose[1])
    assert err_fixed < 0.01
    assert err_plain > 1.0


def test_large_rotation_never_returns_a_reflection() -> None:
    # Near 180 deg an unconstrained SVD fit can return a reflection; the closed form cannot.
    mask, mpp, size = _preset_mask("lite")
    for yaw in (179.0, -179.5, 180.0, 135.0):
        flow = analytic_flow(1.0, -2.0, yaw, size, mpp)
        out = solve_pose(flow, torch.ones(1, 1, size, size), mask, mpp)
        err = (float(out[2]) - yaw + 180.0) % 360.0 - 180.0
        assert abs(err) < 0.01


def test_batched_solve_and_per_sample_mpp() -> None:
    size = 128
    mask = torch.zeros(2, 1, size, size, dtype=torch.bool)
    mask[:, :, 20:100, 64:120] = True
    mpp = torch.tensor([0.2, 0.5])
    flow = analytic_flow(torch.tensor([1.0, -4.0]), torch.tensor([2.0, 3.0]),
                         torch.tensor([5.0, -5.0]), size, mpp)
    u, v, yaw, cov = solve_pose(flow, torch.ones(2, 1, size, size), mask, mpp)
    assert u.tolist() == pytest.approx([1.0, -4.0], abs=1e-3)
    assert v.tolist() == pytest.approx([2.0, 3.0], abs=1e-3)
    assert yaw.tolist() == pytest.approx([5.0, -5.0], abs=0.01)
    assert cov.shape == (2, 3, 3)


def _cov(mask: torch.Tensor, noise_px: float, conf: torch.Tensor | None = None,
         outliers: float = 0.0) -> torch.Tensor:
    size = mask.shape[-1]
    flow, c = _noisy_case(mask, size, 0.2, (2.0, -1.0, 3.0), noise_px, outliers, seed=3)
    if conf is not None:
        c = conf
    return solve_pose(flow, c, mask, 0.2)[3][0]


def test_covariance_grows_with_noise_and_shrinks_with_more_correspondences() -> None:
    size = 256
    big = torch.zeros(1, 1, size, size, dtype=torch.bool)
    big[..., 40:216, 128:250] = True
    small = torch.zeros_like(big)
    small[..., 100:140, 128:170] = True
    quiet, noisy = _cov(big, 0.3), _cov(big, 2.0)
    assert torch.all(noisy.diagonal() > 5 * quiet.diagonal())
    few = _cov(small, 0.3)
    assert torch.all(few.diagonal() > 3 * quiet.diagonal())
    # Units: a 2 px flow noise on ~20k pixels at 0.2 m/px is millimetres to centimetres
    # (inflated for the stride-8 correlation), not metres.
    assert 1e-6 < float(noisy[0, 0]) < 1e-2
    # Symmetric positive definite.
    assert torch.allclose(noisy, noisy.T)
    assert torch.all(torch.linalg.eigvalsh(noisy.double()) > 0)


def test_covariance_grows_when_outliers_are_trusted() -> None:
    size = 256
    mask = torch.zeros(1, 1, size, size, dtype=torch.bool)
    mask[..., 40:216, 128:250] = True
    downweighted = _cov(mask, 0.3, outliers=0.3)
    trusted = _cov(mask, 0.3, conf=torch.ones(1, 1, size, size), outliers=0.3)
    assert torch.all(trusted.diagonal() > 10 * downweighted.diagonal())


def test_solver_is_differentiable() -> None:
    size = 16
    mask = torch.zeros(1, 1, size, size, dtype=torch.bool)
    mask[..., 2:14, 8:15] = True
    flow = analytic_flow(0.5, -0.3, 4.0, size, 0.2).double()
    flow = (flow + 0.1 * torch.randn(flow.shape, dtype=torch.float64)).requires_grad_()
    conf = (0.2 + torch.rand(1, 1, size, size, dtype=torch.float64)).requires_grad_()

    def pose(f: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return solve_pose(f, c, mask, 0.2)[:3]

    assert torch.autograd.gradcheck(pose, (flow, conf), eps=1e-6, atol=1e-5)
