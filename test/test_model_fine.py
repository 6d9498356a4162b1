# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The fine stage: its window finds a known pose in the network's signs, and trains."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from denseflow_ros.model import DenseFlow, ModelConfig, analytic_flow, get_preset
from denseflow_ros.model.fine import (
    FineAligner,
    FineScores,
    correlate,
    local_normalise,
    place_template,
    subcell_peak,
)
from training.datasets.common import CropOptions
from training.datasets.simulated import SimulatedTowns
from training.losses import fine_loss


def smooth_texture(size: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 1, size // 4, size // 4, generator=gen)
    return F.interpolate(small, size=(size, size), mode="bicubic", align_corners=False)


def ground_view(satellite: torch.Tensor, u_px: float, v_px: float, yaw_deg: float
                ) -> torch.Tensor:
    """Return what a camera at the crop centre sees, by the network's own flow convention."""
    s = satellite.shape[-1]
    flow = analytic_flow(torch.tensor([u_px]), torch.tensor([v_px]), torch.tensor([yaw_deg]),
                         s, 1.0)
    idx = torch.arange(s, dtype=torch.float32)
    gv, gu = torch.meshgrid(idx, idx, indexing="ij")
    target = torch.stack([gu + flow[0, 0], gv + flow[0, 1]], -1)[None]
    return F.grid_sample(satellite, target * (2.0 / (s - 1)) - 1.0, align_corners=True)


def test_subcell_peak_finds_the_vertex_of_a_sampled_paraboloid() -> None:
    k, v, u = torch.meshgrid(torch.arange(5.0), torch.arange(7.0), torch.arange(9.0),
                             indexing="ij")
    scores = -((k - 1.3) ** 2 + (v - 4.2) ** 2 + (u - 5.9) ** 2)[None]
    pk, pv, pu, best = subcell_peak(scores)
    assert torch.allclose(torch.stack([pk, pv, pu]).flatten(), torch.tensor([1.3, 4.2, 5.9]),
                          atol=1e-4)
    assert float(best) == pytest.approx(float(scores.max()))


@pytest.mark.parametrize(("u_px", "v_px", "yaw_deg"), [(3.4, -2.2, 1.6), (-4.6, 1.3, -1.9)])
def test_the_window_recovers_a_known_pose(u_px: float, v_px: float, yaw_deg: float) -> None:
    s = 96
    satellite = smooth_texture(s, 3)
    bev = ground_view(satellite, u_px, v_px, yaw_deg)
    # A view all around the camera: a narrow wedge far ahead cannot tell a turn from a
    # sideways shift.
    idx = torch.arange(s, dtype=torch.float32) - s // 2
    rows, cols = torch.meshgrid(idx, idx, indexing="ij")
    mask = (torch.hypot(rows, cols) < 40)[None, None]
    bev, sat = local_normalise(bev, mask, 4.0), local_normalise(satellite, mask | True, 4.0)
    yaws = torch.arange(-3.0, 3.01, 0.5)[None]
    # The window sits about 1 px and 0.25 deg off the truth: the peak must come back to it.
    start = torch.tensor([[round(u_px) + 1.0, round(v_px) - 1.0]])
    template, weight, top, left = place_template(bev, mask, yaws + 0.25, start)
    scores = correlate(template, weight, top, left, sat, 3)
    k, v, u, best = subcell_peak(scores)
    assert float(u) - 3 + start[0, 0] == pytest.approx(u_px, abs=0.1)
    assert float(v) - 3 + start[0, 1] == pytest.approx(v_px, abs=0.1)
    assert float(0.25 + yaws[0, 0] + 0.5 * k) == pytest.approx(yaw_deg, abs=0.15)
    assert float(best) > 0.8
    # The FFT over the reachable box agrees with the sum written out, at any offset.
    full = torch.zeros(1, 1, s, s)
    kk, dv, du = 3, -2, 1
    h, w = template.shape[-2:]
    full[..., top:top + h, left:left + w] = template[0, kk]
    shifted = torch.roll(sat, (-dv, -du), (-2, -1))
    direct = (full * shifted).sum() / weight[0, kk].sum()
    assert float(scores[0, kk, dv + 3, du + 3]) == pytest.approx(float(direct), abs=1e-4)
    # Elsewhere the same template correlates far worse.
    far = correlate(template, weight, top, left, sat.roll(17, -1), 3)
    assert float(far.max()) < float(best) - 0.4


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    opts = CropOptions(ground_size=(128, 512), satellite_size=160, satellite_mpp=0.2,
                       shift_range_lon_m=4.0, shift_range_lat_m=4.0, rotation_range_deg=3.0)
    ds = SimulatedTowns(tmp_path_factory.mktemp("towns"), "test", opts, towns={"test": [5]},
                        samples={"test": 4}, world_size_m=400.0)
    items = [ds[i] for i in range(len(ds))]
    return {k: torch.stack([it[k] for it in items]) for k in
            ("ground", "satellite", "intrinsics", "shift_u_m", "shift_v_m", "yaw_deg")}


def grey_aligner() -> FineAligner:
    """Return a fine stage whose descriptors are the image itself (no learning)."""
    cfg = get_preset("lite")
    cfg.fine_channels, cfg.fine_range_m = 3, 16.0
    aligner = FineAligner(cfg)
    aligner.ground_net = aligner.satellite_net = torch.nn.Identity()
    return aligner


def test_the_fine_stage_pulls_rendered_frames_onto_their_pose(frames: dict) -> None:
    aligner = grey_aligner()
    true = (frames["shift_u_m"], frames["shift_v_m"], frames["yaw_deg"])
    start = (true[0] + 0.9, true[1] - 0.7, true[2] + 0.6)
    with torch.no_grad():
        scores = aligner(frames["ground"], frames["satellite"], frames["intrinsics"], 0.2,
                         1.65, *start)
    su, sv, yaw = scores.pose()
    before = torch.hypot(start[0] - true[0], start[1] - true[1])
    after = torch.hypot(su - true[0], sv - true[1])
    assert float(after.median()) < 0.3 < float(before.median())
    # (Over a 16 m view ahead a turn and a sideways shift look alike: the yaw only has to
    # stay inside its window here.)
    assert float((yaw - start[2]).abs().max()) <= aligner.config.fine_yaw_deg + 0.125
    # Its loss is lower around the truth than around a start 3 m away from it.
    loss_true, metrics = fine_loss(scores, *true)
    with torch.no_grad():
        wrong = aligner(frames["ground"], frames["satellite"], frames["intrinsics"], 0.2, 1.65,
                        true[0] + 3.0, true[1], true[2])
    loss_wrong, _ = fine_loss(wrong, *true)
    assert float(loss_true) < float(loss_wrong)
    assert metrics["fine_err_m"] < 0.3
    # A start beyond one window's reach along the road: the second window, centred on the
    # first one's peak, reaches the truth.
    far = (true[0] + 2.2, true[1] + 0.4, true[2])
    with torch.no_grad():
        one = aligner(frames["ground"], frames["satellite"], frames["intrinsics"], 0.2, 1.65,
                      *far).pose()
        two = aligner.refine(frames["ground"], frames["satellite"], frames["intrinsics"], 0.2,
                             1.65, *far)
    assert float((one[0] - true[0]).abs().min()) > 0.45
    assert float(torch.hypot(two[0] - true[0], two[1] - true[1]).median()) < 0.3


def test_fine_loss_targets_the_true_step_and_its_gradient_points_there() -> None:
    logits = torch.zeros(1, 3, 5, 5, requires_grad=True)
    scores = FineScores(logits, torch.tensor([[-0.5, 0.0, 0.5]]), torch.tensor([[10.0, -4.0]]),
                        torch.tensor([0.2]), 2)
    # True pose at window index u 2.5 (10.5 px), v 2 (-4 px), yaw 1.5 (0.25 deg).
    loss, _ = fine_loss(scores, torch.tensor([2.1]), torch.tensor([-0.8]),
                        torch.tensor([0.25]))
    loss.backward()
    grad = -logits.grad[0]
    # Raising the target steps lowers the loss: yaw steps 1 and 2, v step 2, u steps 2 and 3.
    positive = (grad > 1e-6).nonzero().tolist()
    assert sorted(positive) == [[1, 2, 2], [1, 2, 3], [2, 2, 2], [2, 2, 3]]
    assert float(loss.detach()) == pytest.approx(float(np.log(75)), rel=1e-5)


def test_a_network_with_a_fine_stage_refines_and_names_what_it_cannot_do(frames: dict) -> None:
    cfg = get_preset("lite")
    cfg.satellite_size, cfg.fine_channels = 160, 4
    net = DenseFlow(cfg).eval()
    plain = DenseFlow(ModelConfig.from_dict({**cfg.to_dict(), "fine_channels": 0})).eval()
    plain.load_state_dict({k: v for k, v in net.state_dict().items()
                           if not k.startswith("fine.")})
    args = (frames["ground"], frames["satellite"], frames["intrinsics"])
    refined, coarse = net(*args), plain(*args)
    # The fine stage moves the pose by at most its windows, and leaves the flow alone.
    assert torch.equal(refined.flow, coarse.flow)
    moved = torch.hypot(refined.shift_u_m - coarse.shift_u_m,
                        refined.shift_v_m - coarse.shift_v_m)
    reach = cfg.fine_passes * (cfg.fine_radius_m + 0.1)
    assert float(moved.max()) <= reach * 2**0.5
    turned = (refined.yaw_deg - coarse.yaw_deg).abs().max()
    assert float(turned) <= cfg.fine_passes * (cfg.fine_yaw_deg + cfg.fine_yaw_step_deg / 2)
    with pytest.raises(ValueError, match="no fine stage"):
        plain(*args, fine_start=(frames["shift_u_m"],) * 3)
    with pytest.raises(ValueError, match="camera at the body origin"):
        net(*args, camera_to_body=torch.eye(4).expand(4, 4, 4))
    with pytest.raises(ValueError, match="fine_passes >= 1"):
        ModelConfig.from_dict({**cfg.to_dict(), "fine_passes": 0}).validate()
    vigor = get_preset("vigor")
    vigor.fine_channels = 4
    with pytest.raises(ValueError, match="pinhole preset in the package layout"):
        vigor.validate()
