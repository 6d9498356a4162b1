# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Training end to end on a tiny KITTI-layout tree: loss goes down, resume is exact, DDP agrees.

The tree is what the simulator's export looks like (KITTI layout, real image sizes), filled
with smooth random textures; the ``lite`` network runs at a fraction of its input size so the
suite stays fast on two shared cores.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from denseflow_ros import metrics
from denseflow_ros.model import load_model
from training import evaluate as evaluate_cli
from training.config import TrainConfig
from training.train import main as train_main
from training.train import train

REPO = Path(__file__).resolve().parents[1]

CALIB = (
    "calib_time: 09-Jan-2012 13:57:47\n"
    "S_rect_02: 1.242000e+03 3.750000e+02\n"
    "P_rect_02: 7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 "
    "7.215377e+02 1.728540e+02 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 "
    "2.745884e-03\n"
)


def texture(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    small = (rng.random((cells, cells * w // h, 3)) * 255).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def make_tree(root: Path, n: int, test_lines: bool = True) -> None:
    rng = np.random.default_rng(7)
    date, drive = "2011_09_26", "2011_09_26_drive_0001_sync"
    (root / "raw_data" / date).mkdir(parents=True)
    (root / "raw_data" / date / "calib_cam_to_cam.txt").write_text(CALIB)
    names = []
    for i in range(n):
        frame = f"{i:010d}"
        names.append(f"{date}/{drive}/{frame}.png")
        base = root / "raw_data" / date / drive
        (base / "oxts" / "data").mkdir(parents=True, exist_ok=True)
        yaw = rng.uniform(-math.pi, math.pi)
        (base / "oxts" / "data" / f"{frame}.txt").write_text(
            f"49.015 8.43 110.0 0.0 0.0 {yaw:.9f}" + " 0.0" * 24 + "\n")
        (base / "image_02" / "data").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(base / "image_02" / "data" / f"{frame}.png"), texture(rng, 375, 1242, 6))
        sat = root / "satmap" / date / drive / f"{frame}.png"
        sat.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(sat), texture(rng, 1280, 1280, 24), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    (root / "train_files.txt").write_text("\n".join(names) + "\n")
    (root / "sim_info.json").write_text(json.dumps({
        "satmap_mpp": 156543.03392 * math.cos(math.radians(49.015)) / 2**18 / 2,
        "camera_height_m": 1.65, "camera_from_oxts_m": [1.08, 0.26]}))
    if test_lines:
        lines = [f"{x} {0.1 * i:.3f} {-0.05 * i:.3f} {0.2:.3f}" for i, x in enumerate(names)]
        (root / "test1_files.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic_kitti")
    make_tree(root, 4)
    return root


def tiny(root: Path, out: Path, **changes: object) -> TrainConfig:
    """Return a lite network config at a quarter of its input size, 2 iterations."""
    cfg = TrainConfig(
        dataset="synthetic", root=str(root), preset="lite", out=str(out),
        ground_size=[32, 128], satellite_size=64, satellite_mpp=0.8, iterations=2,
        shift_range_lon_m=4.0, shift_range_lat_m=4.0, rotation_range_deg=5.0,
        batch_size=2, epochs=2, lr=1e-3, num_workers=0, amp=False, log_every=1,
        pose_loss_start_epoch=1, dataset_options={"val_fraction": 0.0},
    )
    for key, value in changes.items():
        setattr(cfg, key, value)
    return cfg


def test_a_few_steps_reduce_the_loss(tree: Path, tmp_path: Path) -> None:
    # Fixed poses (no perturbation) make every step see the same two samples.
    cfg = tiny(tree, tmp_path / "run", shift_range_lon_m=0.0, shift_range_lat_m=0.0,
               rotation_range_deg=0.0, total_steps=8, batch_size=4,
               pose_loss_start_epoch=100, lr=2e-3)
    summary = train(cfg)
    losses = [h["loss"] for h in summary["history"]]
    epe = [h["epe"] for h in summary["history"]]
    assert len(losses) == 8 and summary["finished"]
    assert np.mean(losses[-2:]) < np.mean(losses[:2]) - 2.0, losses
    # The flow itself improves markedly (the confidence term keeps the loss's floor high).
    assert np.mean(epe[-2:]) < 0.85 * np.mean(epe[:2]), epe
    assert (tmp_path / "run" / "model.pt").is_file()
    assert "step 8" in (tmp_path / "run" / "train.log").read_text()


def test_resume_reproduces_an_uninterrupted_run(tree: Path, tmp_path: Path) -> None:
    # 4 samples, batch 2: two steps per epoch; the pose term starts in the second epoch.
    whole = tiny(tree, tmp_path / "whole", total_steps=4)
    train(whole)
    split = tiny(tree, tmp_path / "split", total_steps=4, max_steps=3)
    first = train(split)
    assert first["step"] == 3 and not first["finished"]
    assert not (tmp_path / "split" / "model.pt").exists()
    split.max_steps = None
    split.resume = True
    second = train(split)
    assert second["step"] == 4 and second["finished"]
    a = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "split" / "model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    state = torch.load(tmp_path / "split" / "last.pt", weights_only=True)
    assert state["epoch"] == 2 and state["step"] == 4 and state["epoch_step"] == 0


def test_best_checkpoint_comes_from_validation_and_evaluates(tree: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    cfg = tiny(tree, tmp_path / "run", total_steps=2, batch_size=3,
               dataset_options={"val_fraction": 0.25}, save_half=True,
               export=str(tmp_path / "bundle" / "demo.pt"))
    summary = train(cfg)
    assert summary["validation"]["samples"] == 1
    bundle = torch.load(tmp_path / "bundle" / "demo.pt", weights_only=True)
    assert bundle["metadata"]["source"] == "best.pt" and bundle["metadata"]["dtype"] == "float16"
    # One validation sample cannot calibrate: the export says so and stays uncalibrated.
    assert "covariance_calibration" not in bundle["metadata"]
    assert "calibration skipped: 1 validation samples" in (tmp_path / "run" / "train.log"
                                                          ).read_text()
    assert next(iter(bundle["state_dict"].values())).dtype == torch.float16
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert best["metadata"]["validation"]["samples"] == 1  # val split, not test1
    assert all(v.dtype == torch.float16 for v in best["state_dict"].values()
               if v.is_floating_point())
    net = load_model(tmp_path / "run" / "best.pt")
    assert net.config.satellite_size == 64 and next(net.parameters()).dtype == torch.float32
    out = tmp_path / "results.json"
    code = evaluate_cli.main([
        "--dataset", "synthetic", "--root", str(tree), "--split", "test1", "--checkpoint",
        str(tmp_path / "run" / "best.pt"), "--json", str(out), "--num-workers", "0",
        "--limit", "3", "--shift-range-lon-m", "4", "--shift-range-lat-m", "4",
        "--rotation-range-deg", "5",
    ])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["samples"] == 3 and set(doc) == {"samples", "prior", "estimate", "consistency"}
    assert set(doc["consistency"]) == set(metrics.CONSISTENCY_KEYS)
    # Prior errors follow from the split file's perturbations alone: i*0.1*4 m, i*0.05*4 m.
    d = [math.hypot(0.4 * i, 0.2 * i) for i in range(3)]
    assert doc["prior"]["distance_mean_m"] == pytest.approx(np.mean(d), abs=1e-4)
    assert doc["prior"]["yaw_median_deg"] == pytest.approx(1.0, abs=1e-4)
    assert "distance_median_m" in capsys.readouterr().out


def test_cli_overrides_config_file_and_names_bad_input(tree: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("dataset: synthetic\npreset: lite\nbatch_size: 99\nepochs: 1\n")
    code = train_main(["--config", str(cfg_file), "--root", str(tree), "--out",
                       str(tmp_path / "r"), "--batch-size", "2", "--ground-size", "32", "128",
                       "--satellite-size", "64", "--satellite-mpp", "0.8", "--iterations", "1",
                       "--num-workers", "0", "--max-steps", "1", "--no-amp",
                       "--dataset-option", "val_fraction=0.0"])
    assert code == 0
    saved = (tmp_path / "r" / "config.yaml").read_text()
    assert "batch_size: 2" in saved and "preset: lite" in saved
    cfg_file.write_text("dataset: synthetic\nbatchsize: 2\n")
    assert train_main(["--config", str(cfg_file), "--root", str(tree)]) == 2
    assert "unknown config fields: batchsize" in capsys.readouterr().err
    assert train_main(["--dataset", "kitti", "--root", str(tmp_path / "none"),
                       "--out", str(tmp_path / "x")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_torchrun_two_processes_train_and_agree(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-port", str(29500 + os.getpid() % 1000), "-m", "training.train",
           "--dataset", "synthetic", "--root", str(tree), "--preset", "lite", "--out", str(out),
           "--ground-size", "32", "128", "--satellite-size", "64", "--satellite-mpp", "0.8",
           "--iterations", "2", "--batch-size", "1", "--epochs", "2", "--num-workers", "0",
           "--device", "cpu", "--log-every", "1", "--shift-range-lon-m", "4",
           "--shift-range-lat-m", "4", "--dataset-option", "val_fraction=0.0"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (out / "train.log").read_text()
    assert "2 process(es) on cpu" in log
    assert "all 2 ranks hold the same weights" in log
    assert "finished at step 4 of 4" in log  # 4 samples / (batch 1 x 2 ranks) x 2 epochs
    assert (out / "model.pt").is_file()


def test_synthetic_export_is_generated_and_matches_the_world(tmp_path: Path) -> None:
    pytest.importorskip("denseflow_ros.sim.export")
    from denseflow_ros.sim.world import generate_world
    from training.datasets import CropOptions, build_dataset

    spec = {"train_seeds": [11], "val_seeds": [12], "test_seeds": [13], "frames": 2,
            "world_size_m": 250.0, "image_size": [248, 75], "satmap_px": 160,
            "satmap_mpp": 0.8}
    opts = CropOptions(ground_size=(32, 128), satellite_size=64, satellite_mpp=0.8,
                       shift_range_lon_m=0.0, shift_range_lat_m=0.0, rotation_range_deg=0.0)
    root = tmp_path / "sim"
    ds = build_dataset("synthetic", root, "train", opts, generate=spec)
    assert len(ds) == 2 and ds.satmap_mpp == pytest.approx(0.8)
    assert len(build_dataset("synthetic", root, "val", opts)) == 2
    test = build_dataset("synthetic", root, "test1", opts)
    assert len(test) == 2 and all(e[1] is not None for e in test.entries)
    # With no perturbation the crop is the orthophoto around the camera, heading along +u.
    world = generate_world(11, size_m=250.0)
    s = ds[0]
    assert float(s["shift_u_m"]) == pytest.approx(0.0, abs=1e-6)
    name = ds.entries[0][0]
    date, drive, frame = name.split("/")
    oxts = (root / "raw_data" / date / drive / "oxts" / "data" / frame.replace(".png", ".txt")
            ).read_text().split()
    lat, lon, yaw = float(oxts[0]), float(oxts[1]), float(oxts[5])
    east, north = world.enu.forward(lat, lon)
    east += 1.08 * math.cos(yaw) + 0.26 * math.sin(yaw)
    north += 1.08 * math.sin(yaw) - 0.26 * math.cos(yaw)
    col, row = world.enu_to_pixel(east, north)
    scale = 0.8 / world.mpp
    f = np.array([math.cos(yaw), -math.sin(yaw)]) * scale
    r = np.array([math.sin(yaw), math.cos(yaw)]) * scale
    m = np.array([[f[0], r[0], col - 32 * (f[0] + r[0])], [f[1], r[1], row - 32 * (f[1] + r[1])]])
    blurred = cv2.GaussianBlur(world.ortho, (0, 0), 0.5 * math.sqrt(scale * scale - 1))
    expected = cv2.warpAffine(blurred, m, (64, 64), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    got = (s["satellite"].permute(1, 2, 0).numpy() * 255).astype(np.float64)
    diff = np.abs(got - expected.astype(np.float64))[4:-4, 4:-4].mean()
    assert diff < 6.0, diff
    shuffled = np.abs(got - np.roll(expected, 8, axis=1).astype(np.float64))[4:-4, 4:-4].mean()
    assert shuffled > 2 * diff


def test_resume_with_another_recipe_is_refused(tree: Path, tmp_path: Path) -> None:
    cfg = tiny(tree, tmp_path / "run", total_steps=4, max_steps=1)
    train(cfg)
    changed = tiny(tree, tmp_path / "run", total_steps=4, lr=5e-3, resume=True)
    with pytest.raises(ValueError, match="other values of lr"):
        train(changed)
    # Where and how long it runs may change.
    same = tiny(tree, tmp_path / "run", total_steps=4, resume=True, max_steps=2, log_every=5)
    assert train(same)["step"] == 2


def test_non_finite_batches_are_skipped_then_stop_the_run(tree: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import training.train as train_module

    real = train_module.total_loss
    poisoned = {"left": 1}

    def flaky(*args: object, **kwargs: object) -> tuple[torch.Tensor, dict[str, float]]:
        loss, logs = real(*args, **kwargs)
        if poisoned["left"] > 0:
            poisoned["left"] -= 1
            loss = loss * float("nan")
            logs["loss"] = float("nan")
        return loss, logs

    monkeypatch.setattr(train_module, "total_loss", flaky)
    cfg = tiny(tree, tmp_path / "one", total_steps=3)
    before = {k: v.clone() for k, v in train_module.build_model(cfg).state_dict().items()}
    summary = train(cfg)
    assert summary["finished"]
    assert "non-finite loss or gradient, batch skipped" in (
        tmp_path / "one" / "train.log").read_text()
    after = load_model(tmp_path / "one" / "model.pt").state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    poisoned["left"] = 100
    with pytest.raises(RuntimeError, match="non-finite steps in a row"):
        train(tiny(tree, tmp_path / "all", total_steps=12, epochs=10))


def test_contrastive_warm_up_then_flow_with_binary_confidence(tree: Path,
                                                            tmp_path: Path) -> None:
    cfg = tiny(tree, tmp_path / "run", total_steps=4, nce_warmup_steps=2, nce_weight=1.0,
               confidence_loss="bce", conf_weight=1.0)
    history = train(cfg)["history"]
    # Warm-up steps run the encoders only; afterwards flow and contrastive terms train together.
    assert all("nce_loss" in h and "epe" not in h for h in history[:2])
    assert all("nce_loss" in h and "epe" in h for h in history[2:])
    assert all(math.isfinite(h["loss"]) for h in history)
    bad = tiny(tree, tmp_path / "bad", total_steps=1, confidence_loss="sigmoid")
    with pytest.raises(ValueError, match="confidence_loss must be paper or bce"):
        train(bad)


def test_the_search_term_trains_the_features_the_search_reads(tree: Path, tmp_path: Path) -> None:
    cfg = tiny(tree, tmp_path / "run", total_steps=2, search_weight=0.05, lr=1e-2,
               flow_trains_encoders=False)
    before = train_module_state(cfg)
    history = train(cfg)["history"]
    assert all(math.isfinite(h["search_loss"]) and 0.0 <= h["search_acc"] <= 1.0
               for h in history)
    assert " search " in (tmp_path / "run" / "train.log").read_text()
    after = load_model(tmp_path / "run" / "model.pt").state_dict()
    # Without a contrastive term, only the search term reaches the satellite trunk.
    key = "satellite_trunk.conv1.weight"
    assert not torch.equal(before[key], after[key])
    off = tiny(tree, tmp_path / "off", total_steps=1, search_weight=0.05, coarse_search_m=0.0)
    with pytest.raises(ValueError, match="search_weight needs a network with the coarse search"):
        train(off)


def test_encoders_can_learn_from_the_contrastive_term_alone(tree: Path, tmp_path: Path) -> None:
    cfg = tiny(tree, tmp_path / "run", total_steps=2, nce_weight=0.0, lr=1e-2,
               flow_trains_encoders=False)
    before = train_module_state(cfg)
    train(cfg)
    after = load_model(tmp_path / "run" / "model.pt").state_dict()
    # Without a contrastive term nothing reaches the trunks; the decoder still learns.
    params = {name for name, _ in load_model(tmp_path / "run" / "model.pt").named_parameters()}
    # (Batch-norm running statistics still follow the data.)
    for key in params:
        if key.startswith(("ground_trunk.", "satellite_trunk.", "feature_encoder.")):
            assert torch.equal(before[key], after[key]), key
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("update."))


def test_the_fine_stage_trains_alone_on_a_trained_network(tree: Path, tmp_path: Path) -> None:
    base = tiny(tree, tmp_path / "base", total_steps=1)
    train(base)
    cfg = tiny(tree, tmp_path / "fine", total_steps=3, fine_channels=4, fine_only=True,
               init_checkpoint=str(tmp_path / "base" / "model.pt"), lr=1e-2)
    history = train(cfg)["history"]
    assert all(math.isfinite(h["fine_loss"]) and h["fine_err_m"] >= 0.0 for h in history)
    assert " fine error " in (tmp_path / "fine" / "train.log").read_text()
    before = load_model(tmp_path / "base" / "model.pt").state_dict()
    net = load_model(tmp_path / "fine" / "model.pt")
    after = net.state_dict()
    assert net.config.fine_channels == 4
    # Every weight but the fine stage's is the starting network's.
    for key, value in before.items():
        assert torch.equal(value, after[key]), key
    fine = [k for k in after if k.startswith("fine.")]
    assert fine and set(after) - set(before) == set(fine)
    # Without fine_only, a checkpoint lacking the fine stage does not fit; fine_only needs one.
    plain = tiny(tree, tmp_path / "plain", total_steps=1, fine_channels=4,
                 init_checkpoint=str(tmp_path / "base" / "model.pt"))
    with pytest.raises(RuntimeError, match="fine"):
        train(plain)
    alone = tiny(tree, tmp_path / "alone", total_steps=1, fine_channels=4, fine_only=True)
    with pytest.raises(ValueError, match="needs fine_channels > 0 and an init_checkpoint"):
        train(alone)


def train_module_state(cfg: TrainConfig) -> dict[str, torch.Tensor]:
    from training.train import build_model

    return {k: v.clone() for k, v in build_model(cfg).state_dict().items()}


def test_the_demo_weight_stages_chain_into_the_bundled_network() -> None:
    import argparse
    import re

    from denseflow_ros.model import get_preset
    from training.config import load_config
    from training.train import build_model

    repo = Path(__file__).resolve().parents[1]
    stages = re.findall(r"--config (training/configs/\S+\.yaml)", (repo / "Makefile").read_text())
    assert len(stages) == 5, stages
    configs = [load_config(argparse.Namespace(config=str(repo / s))) for s in stages]
    # Each stage starts from the previous one's validation-best network; only the last exports.
    assert not configs[0].init_checkpoint
    for before, after in zip(configs, configs[1:]):
        assert after.init_checkpoint == f"{before.out}/best.pt"
    assert [c.export for c in configs] == ["", "", "", "", "denseflow_ros/resources/demo_lite.pt"]
    # Only the last stage trains the fine stage, and nothing else.
    assert [c.fine_only for c in configs] == [False, False, False, False, True]
    # The last stage builds the bundled network's architecture.
    bundled = load_model(repo / "denseflow_ros/resources/demo_lite.pt").config
    last = configs[-1]
    last.init_checkpoint, last.fine_only = "", False
    built = build_model(last).config
    for field in ("satellite_size", "ground_stride", "trunk_widths", "coarse_search_m",
                  "search_view_m", "feature_dim", "fine_channels"):
        assert getattr(built, field) == getattr(bundled, field), field
    assert get_preset("lite").satellite_size == built.satellite_size
