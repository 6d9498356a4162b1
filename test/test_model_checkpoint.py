# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Checkpoints: the package format, the authors' state_dicts, and convert-checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from denseflow_ros.cli import main as cli_main
from denseflow_ros.model import (
    CheckpointError,
    DenseFlow,
    example_intrinsics,
    get_preset,
    load_model,
    save_checkpoint,
)
from denseflow_ros.model.authors import authors_pose_to_package
from denseflow_ros.model.checkpoint import AUTHORS_PREFIXES

# torchvision's ResNet-18 layout: (name, out channels, in channels of block 0, has downsample)
_RESNET_LAYERS = [("layer1", 64, 64, False), ("layer2", 128, 64, True),
                  ("layer3", 256, 128, True), ("layer4", 512, 256, True)]


def _bn(prefix: str, ch: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.weight": torch.rand(ch, generator=gen),
        f"{prefix}.bias": torch.randn(ch, generator=gen),
        f"{prefix}.running_mean": torch.randn(ch, generator=gen),
        f"{prefix}.running_var": 1 + torch.rand(ch, generator=gen),
        f"{prefix}.num_batches_tracked": torch.tensor(7),
    }


def _torchvision_resnet18(gen: torch.Generator) -> dict[str, torch.Tensor]:
    sd = {"conv1.weight": torch.randn(64, 3, 7, 7, generator=gen), **_bn("bn1", 64, gen)}
    for name, out_ch, in_ch, down in _RESNET_LAYERS:
        for block in (0, 1):
            cin = in_ch if block == 0 else out_ch
            p = f"{name}.{block}"
            sd[f"{p}.conv1.weight"] = torch.randn(out_ch, cin, 3, 3, generator=gen)
            sd.update(_bn(f"{p}.bn1", out_ch, gen))
            sd[f"{p}.conv2.weight"] = torch.randn(out_ch, out_ch, 3, 3, generator=gen)
            sd.update(_bn(f"{p}.bn2", out_ch, gen))
            if block == 0 and down:
                sd[f"{p}.downsample.0.weight"] = torch.randn(out_ch, cin, 1, 1, generator=gen)
                sd.update(_bn(f"{p}.downsample.1", out_ch, gen))
    sd["fc.weight"] = torch.randn(1000, 512, generator=gen)
    sd["fc.bias"] = torch.randn(1000, generator=gen)
    return sd


def authors_state_dict(preset: str, prefix: str = "") -> dict[str, torch.Tensor]:
    """Build a state_dict with the authors' BEV_corr key names and shapes, random values."""
    gen = torch.Generator().manual_seed(11)
    ours = DenseFlow(get_preset(preset)).state_dict()
    theirs: dict[str, torch.Tensor] = {}
    for key, value in ours.items():
        for their_prefix, our_prefix in AUTHORS_PREFIXES:
            if key.startswith(our_prefix):
                new = value.clone()
                if new.is_floating_point():
                    new = torch.randn(new.shape, generator=gen) * 0.05
                    if key.endswith("running_var"):
                        new = new.abs() + 1.0
                theirs[their_prefix + key[len(our_prefix):]] = new
    for net in ("GrdFeatureNet", "SatFeatureNet"):
        spare = _torchvision_resnet18(gen)
        # The trunk's stem/layer1/layer2 are the torchvision module's own tensors.
        for key in spare:
            if key.startswith(("conv1.", "bn1.", "layer1.", "layer2.")):
                spare[key] = theirs[f"{net}.{key}"]
        theirs.update({f"{net}.resnet18.{k}": v for k, v in spare.items()})
    theirs["damping"] = torch.full((1, 3), 0.1)
    return {prefix + k: v for k, v in theirs.items()}


@pytest.fixture(scope="module")
def kitti_authors_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("authors") / "kitti_bev_corr.pth"
    torch.save(authors_state_dict("kitti", prefix="module."), path)
    return path


def test_authors_file_has_their_sizes(kitti_authors_file: Path) -> None:
    sd = torch.load(kitti_authors_file, weights_only=True)
    unique = {v.data_ptr(): v.numel() for v in sd.values() if v.is_floating_point()}
    # ~29.9 M used and ~51.9 M held, as the released files.
    assert sum(unique.values()) == pytest.approx(51.9e6, rel=0.01)


def test_load_authors_state_dict(kitti_authors_file: Path) -> None:
    net = load_model(kitti_authors_file, preset="kitti")
    assert not net.training
    theirs = torch.load(kitti_authors_file, weights_only=True)
    ours = net.state_dict()
    assert torch.equal(ours["ground_trunk.layer3.0.downsample.1.running_var"],
                       theirs["module.GrdFeatureNet.layer3.0.downsample.1.running_var"])
    assert torch.equal(ours["update.flow_conf.conv4.weight"],
                       theirs["module.op_flow.update_block.flow_conf.conv4.weight"])
    assert torch.equal(ours["feature_encoder.layer3.1.conv2.bias"],
                       theirs["module.op_flow.fnet1.layer3.1.conv2.bias"])
    assert torch.equal(ours["update.mask.2.weight"],
                       theirs["module.op_flow.update_block.mask.2.weight"])
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(29.85e6, rel=0.01)


def test_authors_format_needs_a_matching_preset(kitti_authors_file: Path) -> None:
    with pytest.raises(CheckpointError, match="pass a preset"):
        load_model(kitti_authors_file)
    with pytest.raises(CheckpointError, match="does not fit preset 'lite'"):
        load_model(kitti_authors_file, preset="lite")
    # Oxford's context encoder has batch-norm parameters the KITTI file lacks.
    with pytest.raises(CheckpointError, match="missing"):
        load_model(kitti_authors_file, preset="oxford")


def test_mismatched_shapes_and_missing_keys(tmp_path: Path) -> None:
    sd = authors_state_dict("kitti")
    sd["op_flow.update_block.flow_head.conv2.weight"] = torch.zeros(3, 256, 3, 3)
    path = tmp_path / "bad_shape.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=r"flow_head\.conv2\.weight has shape"):
        load_model(path, preset="kitti")
    del sd["op_flow.cnet1.conv2.bias"]
    sd.pop("op_flow.update_block.flow_head.conv2.weight")
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match="missing"):
        load_model(path, preset="kitti")


def test_own_format_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(4)
    net = DenseFlow(get_preset("lite")).eval()
    net.ground_trunk.bn1.running_mean.fill_(0.25)
    path = tmp_path / "lite.pt"
    save_checkpoint(net, path, epoch=3, note="unit test")
    data = torch.load(path, weights_only=True)
    assert data["format"] == "denseflow_ros/1"
    assert data["metadata"] == {"epoch": 3, "note": "unit test"}
    assert data["config"]["name"] == "lite"
    loaded = load_model(path)
    gen = torch.Generator().manual_seed(0)
    cfg = net.config
    ground = torch.rand(1, 3, *cfg.ground_size, generator=gen)
    sat = torch.rand(1, 3, cfg.satellite_size, cfg.satellite_size, generator=gen)
    k = example_intrinsics(cfg)
    a, b = net(ground, sat, k), loaded(ground, sat, k)
    assert torch.equal(a.flow, b.flow) and torch.equal(a.yaw_deg, b.yaw_deg)
    with pytest.raises(CheckpointError, match="holds a 'lite' network"):
        load_model(path, preset="kitti")


def test_corrupt_and_foreign_files(tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"\x80\x02not a checkpoint at all")
    with pytest.raises(CheckpointError, match="could not be read"):
        load_model(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "missing.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"encoder.weight": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="neither"):
        load_model(foreign, preset="kitti")
    truncated = tmp_path / "truncated.pt"
    torch.save({"format": "denseflow_ros/1", "config": {"name": "lite"}}, truncated)
    with pytest.raises(CheckpointError, match="unusable config"):
        load_model(truncated)


def test_convert_checkpoint_command(kitti_authors_file: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    dst = tmp_path / "kitti.pt"
    assert cli_main(["convert-checkpoint", str(kitti_authors_file), str(dst),
                     "--preset", "kitti"]) == 0
    report = capsys.readouterr().out
    assert "dropped 245 tensors" in report
    assert "244 spare ResNet-18" in report and "1 damping" in report
    net = load_model(dst, preset="kitti")
    direct = load_model(kitti_authors_file, preset="kitti")
    for key, value in direct.state_dict().items():
        assert torch.equal(value, net.state_dict()[key])
    assert torch.load(dst, weights_only=True)["metadata"]["converted_from"] == "authors BEV_corr"


def test_convert_checkpoint_reports_one_clear_error(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.pth"
    bad.write_bytes(b"garbage")
    assert cli_main(["convert-checkpoint", str(bad), str(tmp_path / "y.pt"),
                     "--preset", "ford"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "could not be read" in err[0]
    assert not (tmp_path / "y.pt").exists()


def test_authors_pose_conversion() -> None:
    # Numbers from the authors' KITTI network (random weights) and from this package's
    # solver (weighted_centroids=False) on the very same flow.
    u, v, yaw = authors_pose_to_package(
        "kitti", torch.tensor([-9.75892162]), torch.tensor([6.48777771]),
        torch.tensor([-3.14583087]),
    )
    assert float(u) == pytest.approx(-9.388458, abs=1e-3)
    assert float(v) == pytest.approx(-7.013222, abs=1e-3)
    assert float(yaw) == pytest.approx(-3.144306, abs=1e-3)
    # Ford (turned layout): likewise, solved on the authors' native-layout flow.
    u, v, yaw = authors_pose_to_package(
        "ford", torch.tensor([8.87826157]), torch.tensor([2.98396277]),
        torch.tensor([-0.63976324]),
    )
    assert float(u) == pytest.approx(3.082988, abs=1e-3)
    assert float(v) == pytest.approx(-8.844275, abs=1e-3)
    assert float(yaw) == pytest.approx(-0.639308, abs=1e-3)


def _lite_payload(tmp_path: Path) -> tuple[Path, dict]:
    path = tmp_path / "lite.pt"
    save_checkpoint(DenseFlow(get_preset("lite")).eval(), path)
    return path, torch.load(path, weights_only=True)


@pytest.mark.parametrize(("field", "value"), [
    ("iterations", 10**9), ("satellite_size", 2**20), ("ground_size", (128, 10**7)),
    ("trunk_widths", (64, 64, 128, 10**6)), ("refine_dim", 10**6), ("corr_radius", 1000),
    ("satellite_mpp", float("nan")), ("iterations", 6.0), ("iterations", True),
    ("ground_stride", 16),
])
def test_checkpoint_config_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      field: str, value: object) -> None:
    from denseflow_ros.model import checkpoint

    built: list[object] = []
    monkeypatch.setattr(checkpoint, "DenseFlow", lambda config: built.append(config))
    path, data = _lite_payload(tmp_path)
    data["config"][field] = value
    torch.save(data, path)
    with pytest.raises(CheckpointError, match=field):
        load_model(path)
    assert built == []


def test_a_checkpoint_from_before_the_ground_stride_option_loads_as_stride_8(
        tmp_path: Path) -> None:
    path, data = _lite_payload(tmp_path)
    del data["config"]["ground_stride"]
    torch.save(data, path)
    net = load_model(path)
    assert net.config.ground_stride == 8
    assert net.ground_trunk(torch.rand(1, 3, 64, 128)).shape[-2:] == (8, 16)


def test_checkpoint_state_is_checked_before_a_network_is_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from denseflow_ros.model import checkpoint

    devices: list[str] = []
    real = checkpoint.DenseFlow

    def recording(config: object) -> DenseFlow:
        devices.append(torch.empty(0).device.type)
        return real(config)

    monkeypatch.setattr(checkpoint, "DenseFlow", recording)
    path, data = _lite_payload(tmp_path)
    state = data["state_dict"]
    key = next(k for k, v in state.items() if v.is_floating_point() and v.dim() == 4)
    good = state[key]
    for bad, message in ((torch.zeros(3, 3), "has shape"),
                         (torch.zeros(good.shape, dtype=torch.int64), "expected a dense"),
                         (torch.zeros(good.shape).to_sparse(), "expected a dense")):
        state[key] = bad
        torch.save(data, path)
        with pytest.raises(CheckpointError, match=message):
            load_model(path)
    assert devices and set(devices) == {"meta"}
    state[key] = good.half()  # a float16 checkpoint is fine
    torch.save(data, path)
    assert load_model(path).config.name == "lite"
    assert devices[-1] == "cpu"


def test_the_node_offers_exactly_the_model_presets() -> None:
    from denseflow_ros.model.config import PRESETS
    from denseflow_ros.ros.parameters import PRESET_NAMES

    assert set(PRESET_NAMES) == set(PRESETS)
