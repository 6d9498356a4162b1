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

Two options serve networks trained from scratch (the ``lite`` recipe): ``confidence_loss:
bce`` replaces the confidence term by a binary cross-entropy against "this pixel's flow is
within ``confidence_tolerance_px``" (the standardised term drives every confidence towards 0
or 1 together when the flow carries no signal yet), and ``nce_weight`` adds a dense
contrastive (InfoNCE) term on the two feature maps the correlation is built from: each
visible BEV cell is scored against every satellite cell (cosine similarity over
``nce_temperature``) with a soft target at its true cell, which gives the encoders a direct
matching signal from the first step. ``search_weight`` adds a term on the coarse shift
search itself (:func:`search_loss`): where the road repeats (lane dashes every few metres),
per-cell matching is satisfied by every period, and only the shift's total score tells the
true one from its aliases.

The fine stage trains alone (:func:`fine_loss`): the cross-entropy of its window's scores
against the true (yaw, shift), spread over the window's neighbouring steps by trilinear
weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from denseflow_ros.model import analytic_flow
from denseflow_ros.model.config import ModelConfig
from denseflow_ros.model.fine import FineScores
from denseflow_ros.model.projection import from_native
from denseflow_ros.model.search import search_setup, shift_scores


@dataclass(frozen=True)
class LossWeights:
    """Coefficients of the loss, as named in the module docstring.

    Their defaults live in one place, :class:`training.config.TrainConfig`'s fields of the
    same names (:func:`training.train.loss_weights` copies them by name).
    """

    gamma: float
    conf_weight: float
    conf_k: float
    pose_weight: float
    pose_u: float
    pose_v: float
    pose_yaw: float
    confidence_loss: str
    confidence_tolerance_px: float
    nce_weight: float
    nce_temperature: float
    search_weight: float


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
        total = total + weights.gamma ** (n - i - 1) * (
            err.mean() + weights.conf_weight * confidence_term(c, err.detach(), weights)
        )
    with torch.no_grad():
        epe = (pred - gt).norm(dim=1)
        metrics = {"epe": float(epe.mean()), "px5": float((epe < 5).float().mean())}
    return total, metrics


def confidence_term(
    confidence: torch.Tensor, error: torch.Tensor, weights: LossWeights
) -> torch.Tensor:
    """Return the mean confidence loss of (P,) confidences given their (P, 2) flow errors."""
    if weights.confidence_loss == "bce":
        inlier = (error.norm(dim=1) < weights.confidence_tolerance_px).float()
        c = confidence.clamp(1e-6, 1.0 - 1e-6)
        return F.binary_cross_entropy(c, inlier)
    per_pixel = error.sum(dim=1)
    z = (per_pixel - per_pixel.mean()) / (per_pixel.std() + 1e-6)
    k = weights.conf_k
    term = confidence * torch.sigmoid(k * z) + (1.0 - confidence) * torch.sigmoid(-k * z)
    return term.mean()


def feature_nce_loss(
    bev: torch.Tensor, satellite: torch.Tensor, mask: torch.Tensor, shift_u_m: torch.Tensor,
    shift_v_m: torch.Tensor, yaw_deg: torch.Tensor, cell_m: torch.Tensor, turns: int,
    temperature: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Return the dense InfoNCE loss of BEV against satellite features, and its accuracy.

    ``bev``/``satellite`` (B, C, A, A) and ``mask`` (B, 1, A, A) in the preset's native layout;
    ``cell_m`` (B,) the feature cell size. Each visible cell whose true satellite cell lies
    inside the grid is a query; its target is bilinear over the four cells around the true
    position. ``nce_acc`` is the fraction of queries whose best match is within one cell.
    """
    bev, satellite = from_native(bev, turns), from_native(satellite, turns)
    mask = from_native(mask.float(), turns) > 0.5
    b, c, a, _ = bev.shape
    flow = analytic_flow(shift_u_m, shift_v_m, yaw_deg, a, cell_m).to(bev.device)
    idx = torch.arange(a, device=bev.device, dtype=torch.float32)
    gv, gu = torch.meshgrid(idx, idx, indexing="ij")
    tu = (gu + flow[:, 0]).reshape(b, -1)
    tv = (gv + flow[:, 1]).reshape(b, -1)
    valid = mask.reshape(b, -1) & (tu >= 0) & (tu <= a - 1) & (tv >= 0) & (tv <= a - 1)
    if int(valid.sum()) == 0:
        return bev.sum() * 0.0, {"nce_acc": float("nan")}
    f1 = F.normalize(bev.float().reshape(b, c, -1), dim=1)
    f2 = F.normalize(satellite.float().reshape(b, c, -1), dim=1)
    logp = torch.log_softmax(torch.bmm(f1.transpose(1, 2), f2) / temperature, dim=-1)
    u0, v0 = tu.clamp(0, a - 1).floor(), tv.clamp(0, a - 1).floor()
    fu, fv = tu.clamp(0, a - 1) - u0, tv.clamp(0, a - 1) - v0
    loss = bev.new_zeros((), dtype=torch.float32)
    for du, dv, w in ((0, 0, (1 - fu) * (1 - fv)), (1, 0, fu * (1 - fv)),
                      (0, 1, (1 - fu) * fv), (1, 1, fu * fv)):
        cell = ((v0 + dv).clamp(max=a - 1) * a + (u0 + du).clamp(max=a - 1)).long()
        loss = loss - (w * logp.gather(2, cell.unsqueeze(-1))[..., 0])[valid].sum()
    loss = loss / valid.sum()
    with torch.no_grad():
        best = logp.argmax(dim=-1)
        hit = ((best % a).float() - tu).abs().le(1.0) & ((best // a).float() - tv).abs().le(1.0)
        acc = float(hit[valid].float().mean())
    return loss, {"nce_acc": acc}


def search_loss(
    bev: torch.Tensor, satellite: torch.Tensor, mask: torch.Tensor, shift_u_m: torch.Tensor,
    shift_v_m: torch.Tensor, yaw_deg: torch.Tensor, cell_m: torch.Tensor, turns: int,
    reach_cells: int, temperature: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Return the coarse search's loss, the shift's negative log-likelihood, and its accuracy.

    Inputs as for :func:`feature_nce_loss`; the search is the network's own
    (:func:`denseflow_ros.model.search.shift_scores`, ``reach_cells`` and ``temperature`` as
    the network runs it). A shift's log-likelihood is the sum of its visible cells'
    log-probabilities; the loss is minus the log of the posterior mass within one cell of the
    true shift (the visible cells' mean true flow), so it pushes down the aliases the search
    would pick, not the sub-cell shape of the peak, which the decoder refines. Samples whose
    true shift lies beyond the reach are left out. ``search_acc`` is the fraction of samples
    whose best shift is within one cell of the true one.
    """
    bev, satellite = from_native(bev, turns), from_native(satellite, turns)
    mask = from_native(mask.float(), turns) > 0.5
    b, _, a, _ = bev.shape
    r = int(reach_cells)
    visible = mask.float()
    count = visible.sum(dim=(1, 2, 3))
    flow = analytic_flow(shift_u_m, shift_v_m, yaw_deg, a, cell_m).to(bev.device)
    target = (flow * visible).sum(dim=(2, 3)) / count.clamp(min=1.0)[:, None]  # (B, 2)
    score = shift_scores(bev.float(), satellite.float(), mask, r, temperature)
    logp = torch.log_softmax((score * count[:, None, None]).reshape(b, -1), dim=1)
    offsets = torch.arange(-r, r + 1, device=bev.device, dtype=torch.float32)
    near_u = (offsets[None, :] - target[:, :1]).abs() <= 1.0  # (B, k) along u
    near_v = (offsets[None, :] - target[:, 1:]).abs() <= 1.0  # (B, k) along v
    near = (near_v[:, :, None] & near_u[:, None, :]).reshape(b, -1)
    valid = near.any(dim=1) & (count > 0)
    if not bool(valid.any()):
        return bev.sum() * 0.0, {"search_acc": float("nan")}
    mass = torch.logsumexp(logp.masked_fill(~near, float("-inf")), dim=1)
    loss = -mass[valid].mean()
    with torch.no_grad():
        hit = near.gather(1, logp.argmax(dim=1, keepdim=True))[:, 0]
        acc = float(hit[valid].float().mean())
    return loss, {"search_acc": acc}


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
    config: ModelConfig | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Combine the losses for one training forward's output and its batch.

    A ``features_only`` forward (:class:`denseflow_ros.model.DenseFlowFeatures`) gets the
    contrastive term alone; ``config`` is the network's (its native layout, and its coarse
    search for ``search_weight``; None: the package layout, no search).
    """
    turns = config.native_turns if config is not None else 0
    if not hasattr(out, "flows"):
        loss, metrics = _nce(out.bev, out.satellite, out.mask, batch, turns,  # type: ignore
                             weights)
        metrics["loss"] = float(loss.detach())
        return loss, metrics
    size = out.flows[-1].shape[-1]  # type: ignore[attr-defined]
    gt = ground_truth_flow(
        batch["shift_u_m"], batch["shift_v_m"], batch["yaw_deg"], size, batch["mpp"],
        out.mask,  # type: ignore[attr-defined]
    )
    loss, metrics = sequence_flow_loss(
        out.flows, out.confidences, gt, out.mask, weights  # type: ignore[attr-defined]
    )
    metrics["flow_loss"] = float(loss.detach())
    if weights.nce_weight > 0 and getattr(out, "bev_features", None) is not None:
        nce, nce_metrics = _nce(out.bev_features, out.satellite_features,  # type: ignore
                                out.feature_mask, batch, turns, weights)  # type: ignore
        metrics.update(nce_metrics)
        loss = loss + weights.nce_weight * nce
    if weights.search_weight > 0 and getattr(out, "bev_features", None) is not None:
        if config is None or config.coarse_search_m <= 0:
            raise ValueError("search_weight needs a network with the coarse search on")
        size_px = batch["satellite"].shape[-1]
        feats = out.bev_features  # type: ignore[attr-defined]
        cell_m = batch["mpp"].float() * (size_px / feats.shape[-1])
        # The search as the network runs it (its cell size from the batch's smallest mpp).
        reach, voters = search_setup(config, out.feature_mask,  # type: ignore[attr-defined]
                                     float(cell_m.min()))
        term, search_metrics = search_loss(
            feats, out.satellite_features, voters,  # type: ignore[attr-defined]
            batch["shift_u_m"], batch["shift_v_m"], batch["yaw_deg"], cell_m, turns, reach,
            config.match_temperature,
        )
        metrics.update(search_metrics)
        metrics["search_loss"] = float(term.detach())
        loss = loss + weights.search_weight * term
    if with_pose:
        p = pose_loss(
            out.shift_u_m, out.shift_v_m, out.yaw_deg,  # type: ignore[attr-defined]
            batch["shift_u_m"], batch["shift_v_m"], batch["yaw_deg"], weights,
        )
        metrics["pose_loss"] = float(p.detach())
        loss = loss + p
    metrics["loss"] = float(loss.detach())
    return loss, metrics


def _nce(
    bev: torch.Tensor, satellite: torch.Tensor, mask: torch.Tensor,
    batch: dict[str, torch.Tensor], turns: int, weights: LossWeights,
) -> tuple[torch.Tensor, dict[str, float]]:
    size = batch["satellite"].shape[-1]
    cell_m = batch["mpp"].float() * (size / bev.shape[-1])
    loss, metrics = feature_nce_loss(
        bev, satellite, mask, batch["shift_u_m"], batch["shift_v_m"], batch["yaw_deg"], cell_m,
        turns, weights.nce_temperature,
    )
    metrics["nce_loss"] = float(loss.detach())
    return loss, metrics


def fine_loss(scores: FineScores, true_u_m: torch.Tensor, true_v_m: torch.Tensor,
              true_yaw_deg: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy of the fine stage's window against the true pose; its peak's error.

    The target is the true (yaw, v, u) in window steps, clamped into the window, spread over
    the eight surrounding steps by trilinear weights. Metrics: ``fine_loss`` and
    ``fine_err_m``, the median distance of the refined peak from the truth.
    """
    logits = scores.logits.float()
    b, n_k, n_v, n_u = logits.shape
    coords = zip(scores.index_of(true_u_m, true_v_m, true_yaw_deg), (n_k, n_v, n_u))
    logp = torch.log_softmax(logits.reshape(b, -1), 1).reshape(b, n_k, n_v, n_u)
    bi = torch.arange(b, device=logits.device)
    lows, fracs = [], []
    for x, n in coords:
        x = x.clamp(0.0, float(n - 1))
        low = x.floor().long().clamp(max=max(n - 2, 0))
        lows.append(low)
        fracs.append(x - low.float())
    loss = logits.new_zeros(b)
    for dk in (0, 1):
        for dv in (0, 1):
            for du in (0, 1):
                steps = (dk, dv, du)
                w = logits.new_ones(b)
                index = []
                for (low, frac), d, n in zip(zip(lows, fracs), steps, logp.shape[1:]):
                    w = w * (frac if d else 1.0 - frac)
                    index.append((low + d).clamp(max=n - 1))
                loss = loss - w * logp[bi, index[0], index[1], index[2]]
    loss = loss.mean()
    su, sv, _ = scores.pose()
    err = torch.hypot(su - true_u_m.float(), sv - true_v_m.float())
    return loss, {"fine_loss": float(loss.detach()), "fine_err_m": float(err.median())}
