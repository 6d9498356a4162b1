# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""A coarse exhaustive search for the BEV's shift, to start the flow decoder near the answer.

The RAFT-style decoder looks up correlation only around its current flow, and from zero flow
it must read a far match out of the pyramid's coarse levels. Along a road most cells match
many places equally well; the few that do not (crossings, driveways, lamps) decide the shift.
This search lets them: every visible BEV cell scores every satellite cell of the prior's
window (a softmax over the window's cells of their cosine similarity), and the shift whose
sum of log-probabilities over the voting cells is highest wins, refined to sub-cell by a
parabola through its neighbours. The voting cells are the visible ones, or only those near
the camera (:func:`view_cells`), whose features resolve the road along its length. Only
translation is searched; the decoder and the pose fit resolve the rotation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from denseflow_ros.model.config import ModelConfig
from denseflow_ros.model.projection import bev_body_coords

# Feature norms below this count as this (as torch.nn.functional.normalize does).
_NORM_EPS = 1e-12


def coarse_shift(
    bev: torch.Tensor, satellite: torch.Tensor, mask: torch.Tensor, reach_cells: int,
    temperature: float, correlation: torch.Tensor | None = None,
) -> torch.Tensor:
    """Return the (B, 2) shift (du, dv) in cells that best carries the BEV onto the satellite.

    ``bev``, ``satellite`` (B, C, A, A) and ``mask`` (B, 1, A, A) bool are in one layout;
    shifts up to ``reach_cells`` along each axis are searched. ``correlation``, when given,
    holds the features' all-pairs dot products over sqrt(C) (any shape of B * A^4 elements,
    cell-major: the correlation pyramid's finest level), so they are not computed again.
    """
    r = int(reach_cells)
    score = shift_scores(bev, satellite, mask, r, temperature, correlation)
    k = 2 * r + 1
    best = score.reshape(score.shape[0], -1).argmax(dim=1)
    bi, bj = best // k, best % k
    return torch.stack([bj.float() - r + _peak_offset(score, bi, bj, along_rows=False),
                        bi.float() - r + _peak_offset(score, bi, bj, along_rows=True)], dim=1)


def shift_scores(
    bev: torch.Tensor, satellite: torch.Tensor, mask: torch.Tensor, reach_cells: int,
    temperature: float, correlation: torch.Tensor | None = None,
) -> torch.Tensor:
    """Return the (B, 2r+1, 2r+1) mean log-probability of every searched shift (differentiable).

    Entry ``[b, r + dv, r + du]`` scores the shift (du, dv) in cells; arguments as for
    :func:`coarse_shift`.
    """
    b, c, a, _ = bev.shape
    r = int(reach_cells)
    n1 = bev.float().reshape(b, c, a * a).norm(dim=1).clamp(min=_NORM_EPS)
    n2 = satellite.float().reshape(b, c, a * a).norm(dim=1).clamp(min=_NORM_EPS)
    if correlation is None:
        dots = torch.bmm(bev.float().reshape(b, c, a * a).transpose(1, 2),
                         satellite.float().reshape(b, c, a * a))
    else:
        dots = correlation.float().reshape(b, a * a, a * a) * float(c) ** 0.5
    # Cosine similarity over the temperature: (B, A*A cells, A*A targets).
    logits = dots / (n1[:, :, None] * n2[:, None, :] * temperature)
    # Each cell's candidates are the (2r+1)^2 targets it can reach; outside the grid scores
    # as uninformative (log-probability of a uniform choice).
    padded = F.pad(logits.reshape(b * a * a, 1, a, a), (r, r, r, r), value=float("-inf"))
    idx = torch.arange(a, device=bev.device)
    gv, gu = torch.meshgrid(idx, idx, indexing="ij")
    k = 2 * r + 1
    # window[n, i, j] = padded[n, v + i, u + j] for cell n at (u, v): unfold every cell's
    # own neighbourhood, then keep the one around the cell itself.
    rows = (gv.reshape(-1)[:, None] + torch.arange(k, device=bev.device)[None])  # (A*A, k)
    cols = (gu.reshape(-1)[:, None] + torch.arange(k, device=bev.device)[None])
    p = padded.reshape(b, a * a, a + 2 * r, a + 2 * r)
    window = p[:, torch.arange(a * a, device=bev.device)[:, None, None], rows[:, :, None],
               cols[:, None, :]]  # (B, A*A, k, k)
    inside = torch.isfinite(window)
    logp = torch.log_softmax(window.reshape(b, a * a, k * k), dim=-1).reshape(b, a * a, k, k)
    uniform = -torch.log(inside.sum(dim=(2, 3), keepdim=True).clamp(min=1).float())
    logp = torch.where(inside, logp, uniform.expand_as(logp))
    visible = mask.reshape(b, a * a, 1, 1).float()
    return (logp * visible).sum(dim=1) / visible.sum(dim=1).clamp(min=1.0)


def view_cells(grid: int, cell_m: float, within_m: float, turns: int, half_cell: bool,
               device: torch.device) -> torch.Tensor:
    """Return the (A, A) bool cells within ``within_m`` of the BEV's origin (the camera).

    A ground cell at distance d spans about d^2 / (f h) metres of road per feature row of the
    ground image (f its focal length in feature pixels, h the camera height): far cells
    smear the road over several metres and score every period of a repeating pattern alike,
    so the search can leave them out.
    """
    forward, right = bev_body_coords(grid, cell_m, turns, half_cell, device)
    return torch.hypot(forward, right) <= within_m


def search_setup(config: ModelConfig, mask: torch.Tensor, cell_m: float
                 ) -> tuple[int, torch.Tensor]:
    """Return the search's reach in cells and its (B, 1, A, A) voting cells.

    ``mask`` holds the visible cells in the native layout and ``cell_m`` the cell size; the
    reach is the config's ``coarse_search_m`` within the grid, the voters the visible cells
    within ``search_view_m`` of the camera (all of them when it is 0).
    """
    grid = mask.shape[-1]
    reach = min(int(config.coarse_search_m / cell_m), grid - 1)
    if config.search_view_m <= 0:
        return reach, mask
    near = view_cells(grid, cell_m, config.search_view_m, config.native_turns,
                      config.bev_centre_half_cell, mask.device)
    return reach, mask & near


def parabola_offset(lo: torch.Tensor, mid: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Return the vertex of the parabola through (-1, lo), (0, mid), (1, hi), in [-0.5, 0.5].

    Zero where the three values do not bend down (no interior maximum).
    """
    den = lo - 2 * mid + hi
    off = torch.where(den < 0, 0.5 * (lo - hi) / den, torch.zeros_like(den))
    return off.clamp(-0.5, 0.5)


def _peak_offset(score: torch.Tensor, bi: torch.Tensor, bj: torch.Tensor,
                 along_rows: bool) -> torch.Tensor:
    # Sub-cell peak: the vertex of the parabola through the best score and its two neighbours
    # along one axis (zero at the window's edge), within half a cell.
    k = score.shape[-1]
    batch = torch.arange(score.shape[0], device=score.device)
    centre = bi if along_rows else bj
    lo, hi = (centre - 1).clamp(min=0), (centre + 1).clamp(max=k - 1)
    if along_rows:
        s0, sm, sp = score[batch, bi, bj], score[batch, lo, bj], score[batch, hi, bj]
    else:
        s0, sm, sp = score[batch, bi, bj], score[batch, bi, lo], score[batch, bi, hi]
    edge = (centre == 0) | (centre == k - 1)
    off = parabola_offset(sm, s0, sp)
    return torch.where(edge, torch.zeros_like(off), off)
