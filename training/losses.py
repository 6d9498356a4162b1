# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""DenseFlow's training losses: sequence flow + confidence terms, then the pose term.

Per iteration ``i`` of ``N`` (weight ``gamma ** (N - i - 1)``) over the masked BEV pixels:
the L1 error of the flow against the analytic ground-truth flow (mean over pixels and both
channels) plus ``conf_weight`` times ``c * sigmoid(k z) + (1 - c) * sigmoid(-k z)``, where
``c`` is the predicted confidence and ``z`` the pixel's flow error ``|du| + |dv|``
standardised over the batch's masked pixels: confidence is pushed up where the error is
below average and down where it is above. After the warm-up stage the pose term
``pose_weight * mean(w_u |du_m| + w_v |dv_m| + w_yaw |dyaw_deg|)`` from the differentiable
solver is added.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from denseflow_ros.model import analytic_flow


@dataclass
class LossWeights:
    """Coefficients of the loss (MODEL.md's values by default)."""

    gamma: float = 0.8
    conf_weight: float = 100.0
    conf_k: float = 0.05
    pose_weight: float = 50.0
    pose_u: float = 10.0
    pose_v: float = 10.0
    pose_yaw: float = 10.0


def ground_truth_flow(
    shift_u_m: torch.Tensor, shift_v_m: torch.Tensor, yaw_deg: torch.Tensor, size_px: int,
    mpp: torch.Tensor, mask: torch.Tensor,
) -> torch.Tensor:
    """Return the analytic flow of the true pose, zeroed outside ``mask`` (B, 1, S, S)."""
    flow = analytic_flow(shift_u_m, shift_v_m, yaw_deg, size_px, mpp)
    return flow.to(mask.device) * mask.to(flow.dtype)


def sequence_flow_loss(
    flows: list[torch.Tensor], confidences: list[torch.Tensor], flow_gt: torch.Tensor,
    mask: torch.Tensor, weights: LossWeights,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Return the weighted flow + confidence loss over all iterations, and flow metrics."""
    m = mask[:, 0].bool()
    n_pix = int(m.sum())
    if n_pix < 2:
        zero = flows[-1].sum() * 0.0
        return zero, {"epe": float("nan")}
    gt = flow_gt.permute(0, 2, 3, 1)[m].float()  # (P, 2)
    total = flows[-1].new_zeros((), dtype=torch.float32)
    n = len(flows)
    for i, (flow, conf) in enumerate(zip(flows, confidences)):
        pred = flow.permute(0, 2, 3, 1)[m].float()
        c = conf[:, 0][m].float()
        err = (pred - gt).abs()  # (P, 2)
        per_pixel = err.sum(dim=1)
        z = (per_pixel - per_pixel.mean()) / (per_pixel.std() + 1e-6)
        k = weights.conf_k
        conf_term = c * torch.sigmoid(k * z) + (1.0 - c) * torch.sigmoid(-k * z)
        total = total + weights.gamma ** (n - i - 1) * (
            err.mean() + weights.conf_weight * conf_term.mean()
        )
    with torch.no_grad():
        epe = (pred - gt).norm(dim=1)
        metrics = {"epe": float(epe.mean()), "px5": float((epe < 5).float().mean())}
    return total, metrics


def pose_loss(
    shift_u_m: torch.Tensor, shift_v_m: torch.Tensor, yaw_deg: torch.Tensor,
    true_u_m: torch.Tensor, true_v_m: torch.Tensor, true_yaw_deg: torch.Tensor,
    weights: LossWeights,
) -> torch.Tensor:
    """Return the weighted L1 pose error of the solver's output."""
    du = (shift_u_m.float() - true_u_m.float()).abs()
    dv = (shift_v_m.float() - true_v_m.float()).abs()
    dyaw = (yaw_deg.float() - true_yaw_deg.float()).abs()
    return weights.pose_weight * (
        weights.pose_u * du + weights.pose_v * dv + weights.pose_yaw * dyaw
    ).mean()


def total_loss(
    out: object, batch: dict[str, torch.Tensor], weights: LossWeights, with_pose: bool,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Combine the losses for one training forward's output and its batch."""
    size = out.flows[-1].shape[-1]  # type: ignore[attr-defined]
    gt = ground_truth_flow(
        batch["shift_u_m"], batch["shift_v_m"], batch["yaw_deg"], size, batch["mpp"],
        out.mask,  # type: ignore[attr-defined]
    )
    loss, metrics = sequence_flow_loss(
        out.flows, out.confidences, gt, out.mask, weights  # type: ignore[attr-defined]
    )
    metrics["flow_loss"] = float(loss.detach())
    if with_pose:
        p = pose_loss(
            out.shift_u_m, out.shift_v_m, out.yaw_deg,  # type: ignore[attr-defined]
            batch["shift_u_m"], batch["shift_v_m"], batch["yaw_deg"], weights,
        )
        metrics["pose_loss"] = float(p.detach())
        loss = loss + p
    metrics["loss"] = float(loss.detach())
    return loss, metrics
