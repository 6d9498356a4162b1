# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The DenseFlow network: the forward contract, inference vs training, gradients."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from denseflow_ros.model import (
    DenseFlow,
    DenseFlowOutput,
    DenseFlowTrainingOutput,
    example_intrinsics,
    get_preset,
    visibility_mask,
)


def _inputs(name: str, batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, ...]:
    cfg = get_preset(name)
    gen = torch.Generator().manual_seed(seed)
    h, w = cfg.ground_size
    s = cfg.satellite_size
    return (
        torch.rand(batch, 3, h, w, generator=gen),
        torch.rand(batch, 3, s, s, generator=gen),
        example_intrinsics(cfg, batch),
    )


def _net(name: str = "lite", seed: int = 0, **changes: object) -> DenseFlow:
    torch.manual_seed(seed)
    cfg = dataclasses.replace(get_preset(name), **changes)
    return DenseFlow(cfg)


def test_lite_inference_contract() -> None:
    net = _net().eval()
    ground, sat, k = _inputs("lite", batch=2)
    out = net(ground, sat, k)
    assert isinstance(out, DenseFlowOutput)
    s = net.config.satellite_size
    assert out.flow.shape == (2, 2, s, s)
    assert out.confidence.shape == (2, 1, s, s)
    assert out.mask.shape == (2, 1, s, s) and out.mask.dtype == torch.bool
    for t in (out.shift_u_m, out.shift_v_m, out.yaw_deg):
        assert t.shape == (2,) and torch.isfinite(t).all()
    assert out.covariance.shape == (2, 3, 3)
    assert torch.all(torch.linalg.eigvalsh(out.covariance.double()) > 0)
    assert not out.flow.requires_grad and not out.shift_u_m.requires_grad
    conf = out.confidence[out.mask]
    assert torch.all((conf > 0) & (conf < 1))
    assert torch.all(out.confidence[~out.mask] == 0)
    # The returned mask is the geometry's, the one training zeroes ground truth outside of.
    assert torch.equal(out.mask, visibility_mask(net.config, k))


def test_a_stride_4_ground_trunk_samples_the_road_ahead_twice_as_finely() -> None:
    net = _net(ground_stride=4).eval()
    ground, sat, k = _inputs("lite")
    h, w = net.config.ground_size
    assert net.ground_trunk(ground).shape[-2:] == (h // 4, w // 4)
    assert net.satellite_trunk(sat).shape[-1] == net.config.feature_size
    # The same parameters as the stride-8 trunk: a stride-8 checkpoint loads into it.
    net.load_state_dict(_net().state_dict())
    out = net(ground, sat, k)
    assert torch.equal(out.mask, visibility_mask(net.config, k))
    assert torch.isfinite(out.shift_u_m).all() and torch.isfinite(out.yaw_deg).all()
    with pytest.raises(ValueError, match="ground_stride must be 4 or 8"):
        _net(ground_stride=2)


def test_kitti_forward_shapes() -> None:
    # The call everything else makes, at the paper's sizes (one iteration keeps it quick).
    net = _net("kitti").eval()
    net.iterations = 1
    ground, sat, k = _inputs("kitti")
    assert ground.shape == (1, 3, 256, 1024) and sat.shape == (1, 3, 512, 512)
    out = net(ground, sat, k)
    assert out.flow.shape == (1, 2, 512, 512)
    assert out.confidence.shape == (1, 1, 512, 512)
    assert out.covariance.shape == (1, 3, 3)
    assert 0.1 < float(out.mask.float().mean()) < 0.4
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(29.85e6, rel=0.01)


def _freeze_batchnorm(net: nn.Module) -> None:
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


def test_inference_equals_the_last_training_iteration() -> None:
    net = _net()
    ground, sat, k = _inputs("lite", batch=1, seed=3)
    net.train()
    _freeze_batchnorm(net)  # same normalisation statistics in both passes
    train_out = net(ground, sat, k)
    assert isinstance(train_out, DenseFlowTrainingOutput)
    assert len(train_out.flows) == len(train_out.confidences) == net.iterations
    net.eval()
    out = net(ground, sat, k)
    assert torch.allclose(out.flow, train_out.flows[-1].detach(), atol=1e-4)
    assert torch.allclose(out.confidence, train_out.confidences[-1].detach(), atol=1e-6)
    assert torch.equal(out.mask, train_out.mask)
    assert float(out.shift_u_m) == pytest.approx(float(train_out.shift_u_m.detach()), abs=1e-4)
    assert float(out.yaw_deg) == pytest.approx(float(train_out.yaw_deg.detach()), abs=1e-4)
    # Iterations differ from each other: the decoder does refine.
    assert not torch.allclose(train_out.flows[0], train_out.flows[-1])


def test_iterations_are_a_run_time_setting() -> None:
    net = _net().train()
    ground, sat, k = _inputs("lite")
    net.iterations = 2
    assert len(net(ground, sat, k).flows) == 2
    net.eval()
    net.iterations = 1
    one = net(ground, sat, k).flow
    net.iterations = 3
    three = net(ground, sat, k).flow
    assert not torch.allclose(one, three)


def test_pose_loss_gradients_reach_both_trunks() -> None:
    net = _net().train()
    ground, sat, k = _inputs("lite", batch=2)
    out = net(ground, sat, k)
    loss = (out.shift_u_m.abs() + out.shift_v_m.abs() + out.yaw_deg.abs()).mean()
    loss.backward()
    for trunk in (net.ground_trunk, net.satellite_trunk):
        grad = trunk.conv1.weight.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    for module in (net.feature_encoder, net.context_encoder):
        assert module.conv1.weight.grad.abs().sum() > 0
    assert net.update.flow_conf.conv4.weight.grad.abs().sum() > 0
    assert net.update.mask[2].weight.grad.abs().sum() > 0


def test_turned_preset_runs_in_its_native_layout() -> None:
    # A preset trained with the heading "up" sees the satellite turned a quarter; its
    # outputs come back in the package layout with the mask ahead of the camera.
    net = _net(native_turns=1).eval()
    ground, sat, k = _inputs("lite")
    out = net(ground, sat, k)
    c = net.config.satellite_size // 2
    assert not out.mask[..., : c - 8].any()
    assert out.mask[..., c + 20:].float().mean() > 0.1
    assert torch.equal(out.mask, visibility_mask(net.config, k))


def _nearest_visible_px(mask: torch.Tensor) -> int:
    c = mask.shape[-1] // 2
    row = mask[0, c, c:]
    return int(torch.nonzero(row)[0])


def test_per_sample_mpp_and_camera_height() -> None:
    net = _net().eval()
    ground, sat, k = _inputs("lite", batch=2)
    out = net(ground, sat, k, satellite_mpp=torch.tensor([0.4, 0.8]))
    # The nearest visible ground is a fixed distance ahead: at twice the metres per pixel it
    # is half as many pixels ahead (to within a feature cell).
    near, far = _nearest_visible_px(out.mask[0]), _nearest_visible_px(out.mask[1])
    assert far < near and abs(2 * far - near) <= 16
    # A higher camera sees the ground start further ahead.
    high = net(ground, sat, k, camera_height_m=3.3)
    assert _nearest_visible_px(high.mask[0]) > near + 8


def test_panorama_preset_forward() -> None:
    net = _net("vigor", trunk_widths=(16, 16, 32, 32), refine_dim=32, refine_stages=1,
               feature_dim=32, hidden_dim=16, context_dim=16, iterations=2).eval()
    cfg = net.config
    gen = torch.Generator().manual_seed(0)
    ground = torch.rand(1, 3, *cfg.ground_size, generator=gen)
    sat = torch.rand(1, 3, cfg.satellite_size, cfg.satellite_size, generator=gen)
    out = net(ground, sat, None)
    assert out.mask.float().mean() > 0.9
    assert torch.isfinite(out.flow).all()


def test_bad_inputs_raise_one_clear_error() -> None:
    net = _net().eval()
    ground, sat, k = _inputs("lite")
    with pytest.raises(ValueError, match="same batch size"):
        net(ground, torch.cat([sat, sat]), k)
    with pytest.raises(ValueError, match="square"):
        net(ground, sat[..., :200], k)
    with pytest.raises(ValueError, match="unknown model preset"):
        get_preset("nuscenes")


def test_mixed_precision_keeps_correlation_and_pose_in_float32() -> None:
    net = _net().eval()
    ground, sat, k = _inputs("lite")
    ref = net(ground, sat, k)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(ground, sat, k)
    for t in (out.shift_u_m, out.shift_v_m, out.yaw_deg, out.covariance):
        assert t.dtype == torch.float32 and torch.isfinite(t).all()
    assert torch.equal(out.mask, ref.mask)
    assert abs(float(out.shift_u_m) - float(ref.shift_u_m)) < 0.5
    assert abs(float(out.yaw_deg) - float(ref.yaw_deg)) < 0.5


def test_a_camera_that_sees_no_ground_gives_finite_uninformative_output() -> None:
    net = _net().eval()
    ground, sat, k = _inputs("lite")
    k[:, 1, 2] = -5000.0  # principal point far above the image: the ground never projects in
    out = net(ground, sat, k)
    assert not out.mask.any()
    for t in (out.shift_u_m, out.shift_v_m, out.yaw_deg, out.covariance, out.flow):
        assert torch.isfinite(t).all()
    # Nothing constrains the pose: the covariance says so.
    assert torch.all(out.covariance[0].diagonal() > 1e3)
    net.train()
    train_out = net(ground.expand(2, -1, -1, -1), sat.expand(2, -1, -1, -1), k.expand(2, 3, 3))
    assert torch.isfinite(train_out.flows[-1]).all()


def test_paper_presets_solve_pose_with_the_authors_centroid_rule() -> None:
    from denseflow_ros.model import DenseFlow, get_preset

    # Released weights were trained through plain-mean centroids (VIGOR: weighted); the lite
    # network is trained here with the weighted fit.
    expected = {"kitti": False, "ford": False, "oxford": False, "vigor": True, "lite": True}
    for name, weighted in expected.items():
        assert get_preset(name).weighted_centroids is weighted
    assert DenseFlow(get_preset("lite")).weighted_centroids is True


@pytest.mark.parametrize("view_m", [0.0, 25.0])
def test_coarse_search_starts_the_decoder_at_the_searched_shift(view_m: float) -> None:
    from denseflow_ros.model.projection import from_native
    from denseflow_ros.model.search import coarse_shift, view_cells

    net = _net(coarse_search_m=12.0, search_view_m=view_m).eval()
    # With the flow head silenced the decoder never moves: the output is where it started.
    nn.init.zeros_(net.update.flow_head.conv2.weight)
    nn.init.zeros_(net.update.flow_head.conv2.bias)
    ground, sat, k = _inputs("lite", batch=2)
    out = net(ground, sat, k)
    feats = net(ground, sat, k, features_only=True)
    cell_m = net.config.satellite_mpp * net.config.stride
    voters = feats.mask
    if view_m:
        near = view_cells(net.config.feature_size, cell_m, view_m, 0, False, voters.device)
        # The view reaches about 36 m ahead: the search then hears only the nearer cells.
        assert 0 < int((voters & near).sum()) < int(voters.sum())
        voters = voters & near
    expected = coarse_shift(feats.bev, feats.satellite, voters, int(12.0 / cell_m),
                            net.config.match_temperature)
    assert expected.abs().max() > 0.5  # random weights still match somewhere off the prior
    flow = from_native(out.flow, net.config.native_turns, vector=True)
    # Convex upsampling mixes a cell with its neighbours (zero beyond the grid), and unseen
    # cells are pinned at coordinate 0: compare two cells inside the view and the grid.
    st = net.config.stride
    padded = torch.nn.functional.pad(out.mask.float(), (2 * st,) * 4)
    inner = torch.nn.functional.avg_pool2d(padded, 4 * st + 1, 1) > 0.999
    for b in range(2):
        seen = inner[b, 0]
        assert int(seen.sum()) > 50
        got = flow[b, :, seen] / net.config.stride  # satellite pixels -> cells
        assert torch.allclose(got, expected[b][:, None].expand_as(got), atol=1e-3)
    # Without the search the same silenced decoder stays at the prior.
    net.config.coarse_search_m = 0.0
    still = net(ground, sat, k).flow
    assert float(still[inner.expand(-1, 2, -1, -1)].abs().max()) < 1e-4
