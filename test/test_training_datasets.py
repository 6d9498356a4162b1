# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Benchmark loaders on small trees built from the real split and label files.

Each tree holds a few entries of the real lists, images at the datasets' real sizes and
calibration/pose files in their real text formats. Satellite images are black with two
markers: red at the true position and green 10 m ahead along the true heading, so the crop
and its targets can be checked against each other (position, scale and the yaw's sign).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from training.datasets import CropOptions, DatasetRootError, build_dataset
from training.datasets.kitti import SATMAP_MPP as KITTI_MPP

# ---------------------------------------------------------------------------- helpers


def write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                       [cv2.IMWRITE_PNG_COMPRESSION, 1])


def marked_map(size_wh: tuple[int, int], truth_px: np.ndarray, heading_rad: float,
               mpp: float) -> np.ndarray:
    """Black image, red blob at the truth, green blob 10 m ahead along the heading."""
    img = np.zeros((size_wh[1], size_wh[0], 3), np.uint8)
    ahead = truth_px + 10.0 / mpp * np.array([math.cos(heading_rad), -math.sin(heading_rad)])
    for centre, channel in ((truth_px, 0), (ahead, 1)):
        layer = np.ascontiguousarray(img[:, :, channel])
        # Sub-pixel centre via shift=4 (coordinates in 1/16 px).
        c = tuple(int(round(x * 16)) for x in centre)
        cv2.circle(layer, c, 4 * 16, 255, -1, lineType=cv2.LINE_AA, shift=4)
        img[:, :, channel] = layer
    return img


def centroid(channel: torch.Tensor) -> np.ndarray:
    w = channel.numpy().astype(np.float64)
    w = np.where(w > 0.2, w, 0.0)
    assert w.sum() > 0, "marker not inside the crop"
    vv, uu = np.mgrid[0 : w.shape[0], 0 : w.shape[1]]
    return np.array([(uu * w).sum() / w.sum(), (vv * w).sum() / w.sum()])


def check_markers(sample: dict, tol_px: float = 0.35) -> None:
    """Truth marker at c + shift / mpp; heading marker 10 m away, turned by yaw CCW."""
    sat = sample["satellite"]
    c = sat.shape[-1] // 2
    mpp = float(sample["mpp"])
    su, sv, yaw = (float(sample[k]) for k in ("shift_u_m", "shift_v_m", "yaw_deg"))
    truth = np.array([c + su / mpp, c + sv / mpp])
    np.testing.assert_allclose(centroid(sat[0]), truth, atol=tol_px)
    a = math.radians(yaw)
    ahead = truth + 10.0 / mpp * np.array([math.cos(a), -math.sin(a)])
    np.testing.assert_allclose(centroid(sat[1]), ahead, atol=tol_px)


def r_img(yaw_deg: float, vec: tuple[float, float]) -> np.ndarray:
    a = math.radians(yaw_deg)
    return np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]]) @ np.array(vec)


# ---------------------------------------------------------------------------- KITTI

CALIB_CAM_TO_CAM = """calib_time: 09-Jan-2012 13:57:47
corner_dist: 9.950000e-02
S_00: 1.392000e+03 5.120000e+02
K_00: 9.842439e+02 0.000000e+00 6.900000e+02 0.000000e+00 9.808141e+02 2.331966e+02 0.000000e+00 0.000000e+00 1.000000e+00
D_00: -3.728755e-01 2.037299e-01 2.219027e-03 1.383707e-03 -7.233722e-02
R_00: 1.000000e+00 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00
T_00: 2.573699e-16 -1.059758e-16 1.614870e-16
S_rect_00: 1.242000e+03 3.750000e+02
R_rect_00: 9.999239e-01 9.837760e-03 -7.445048e-03 -9.869795e-03 9.999421e-01 -4.278459e-03 7.402527e-03 4.351614e-03 9.999631e-01
P_rect_00: 7.215377e+02 0.000000e+00 6.095593e+02 0.000000e+00 0.000000e+00 7.215377e+02 1.728540e+02 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00
S_02: 1.392000e+03 5.120000e+02
K_02: 9.597910e+02 0.000000e+00 6.960217e+02 0.000000e+00 9.569251e+02 2.241806e+02 0.000000e+00 0.000000e+00 1.000000e+00
S_rect_02: 1.242000e+03 3.750000e+02
R_rect_02: 9.998817e-01 1.511453e-02 -2.841595e-03 -1.511724e-02 9.998853e-01 -9.338510e-04 2.827154e-03 9.766976e-04 9.999955e-01
P_rect_02: 7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 7.215377e+02 1.728540e+02 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03
"""  # noqa: E501


def oxts_line(yaw: float) -> str:
    values = [49.015, 8.43, 112.9, 0.02, 0.01, yaw, 1.0, 2.0, 2.2, 0.1, 0.0, 0.1, 0.2, 9.8,
              0.1, 0.2, 9.8, 0.0, 0.0, 0.01, 0.0, 0.0, 0.01, 0.3, 0.05, 4, 10, 5, 5, 0]
    return " ".join(f"{v:.{12 if i < 6 else 4}f}" if isinstance(v, float) else str(v)
                    for i, v in enumerate(values)) + "\n"


def kitti_tree(root: Path, shared: Path, n: int = 2) -> dict[str, list[str]]:
    lists = {}
    for split in ("train", "test1", "test2"):
        lines = (shared / "kitti" / f"{split}_files.txt").read_text().splitlines()
        # Ensure a test frame that repeats with different perturbations is included.
        lists[split] = lines[:n]
    test1 = (shared / "kitti" / "test1_files.txt").read_text().splitlines()
    seen: dict[str, list[str]] = {}
    for line in test1:
        seen.setdefault(line.split()[0], []).append(line)
        if len(seen[line.split()[0]]) == 2:
            lists["test1"] = seen[line.split()[0]] + lists["test1"][1:n]
            break
    rng = np.random.default_rng(0)
    for split, lines in lists.items():
        (root / f"{split}_files.txt").write_text("\n".join(lines) + "\n")
        for line in lines:
            name = line.split()[0]
            date, drive, image = name.split("/")
            calib = root / "raw_data" / date / "calib_cam_to_cam.txt"
            calib.parent.mkdir(parents=True, exist_ok=True)
            calib.write_text(CALIB_CAM_TO_CAM)
            yaw = float(rng.uniform(-math.pi, math.pi))
            oxts = root / "raw_data" / date / drive / "oxts" / "data" / image.replace(".png",
                                                                                        ".txt")
            oxts.parent.mkdir(parents=True, exist_ok=True)
            oxts.write_text(oxts_line(yaw))
            write_png(root / "raw_data" / date / drive / "image_02" / "data" / image,
                      np.full((375, 1242, 3), 90, np.uint8))
            gps = np.array([639.5, 639.5])
            f = np.array([math.cos(yaw), -math.sin(yaw)])
            r = np.array([math.sin(yaw), math.cos(yaw)])
            camera = gps + (1.08 * f + 0.26 * r) / KITTI_MPP
            write_png(root / "satmap" / name, marked_map((1280, 1280), camera, yaw, KITTI_MPP))
    return lists


@pytest.fixture(scope="module")
def kitti_root(tmp_path_factory: pytest.TempPathFactory, shared_datasets: Path) -> Path:
    root = tmp_path_factory.mktemp("kitti")
    kitti_tree(root, shared_datasets)
    return root


def test_kitti_sizes_intrinsics_and_markers(kitti_root: Path) -> None:
    ds = build_dataset("kitti", kitti_root, "train", CropOptions(), val_fraction=0.0)
    assert len(ds) == 2
    s = ds[0]
    assert s["ground"].shape == (3, 256, 1024) and s["ground"].dtype == torch.float32
    assert s["satellite"].shape == (3, 512, 512)
    assert float(s["ground"].max()) <= 1.0
    k = s["intrinsics"].numpy()
    # Pixel centres map to pixel centres when resizing: c' = (c + 0.5) * s - 0.5.
    np.testing.assert_allclose(
        k[0], [721.5377 * 1024 / 1242, 0, (609.5593 + 0.5) * 1024 / 1242 - 0.5], rtol=1e-6)
    np.testing.assert_allclose(
        k[1], [0, 721.5377 * 256 / 375, (172.854 + 0.5) * 256 / 375 - 0.5], rtol=1e-6)
    assert float(s["mpp"]) == pytest.approx(KITTI_MPP)
    assert abs(float(s["shift_u_m"])) <= 20.0 and abs(float(s["shift_v_m"])) <= 20.0 * 1.5
    assert abs(float(s["yaw_deg"])) <= 10.0
    check_markers(s)


def test_kitti_training_perturbation_changes_per_epoch_and_repeats(kitti_root: Path) -> None:
    ds = build_dataset("kitti", kitti_root, "train", CropOptions(seed=3), val_fraction=0.0)
    a = float(ds[1]["shift_u_m"])
    assert float(ds[1]["shift_u_m"]) == a  # same epoch, same draw
    ds.set_epoch(1)
    b = ds[1]
    assert float(b["shift_u_m"]) != a
    check_markers(b)


def test_kitti_test_lines_carry_the_perturbations(kitti_root: Path) -> None:
    ds = build_dataset("kitti", kitti_root, "test1", CropOptions())
    lines = (kitti_root / "test1_files.txt").read_text().splitlines()
    assert lines[0].split()[0] == lines[1].split()[0]  # one frame, two perturbations
    for i, line in enumerate(lines):
        x, y, t = (float(v) for v in line.split()[1:])
        s = ds[i]
        expected = r_img(10.0 * t, (20.0 * x, -20.0 * y))
        assert float(s["shift_u_m"]) == pytest.approx(expected[0], abs=1e-4)
        assert float(s["shift_v_m"]) == pytest.approx(expected[1], abs=1e-4)
        assert float(s["yaw_deg"]) == pytest.approx(10.0 * t, abs=1e-4)
        check_markers(s)
    # Test perturbations do not depend on epoch or seed.
    other = build_dataset("kitti", kitti_root, "test1", CropOptions(seed=9))
    other.set_epoch(5)
    assert float(other[0]["shift_u_m"]) == pytest.approx(float(ds[0]["shift_u_m"]))


def test_kitti_other_sizes_scale_crop_and_intrinsics(kitti_root: Path) -> None:
    opts = CropOptions(ground_size=(128, 512), satellite_size=256, satellite_mpp=0.4,
                       rotation_range_deg=0.0)
    s = build_dataset("kitti", kitti_root, "test2", opts)[0]
    assert s["ground"].shape == (3, 128, 512) and s["satellite"].shape == (3, 256, 256)
    assert float(s["intrinsics"][0, 0]) == pytest.approx(721.5377 * 512 / 1242, rel=1e-6)
    assert float(s["yaw_deg"]) == 0.0
    check_markers(s, tol_px=0.3)


def test_kitti_missing_pieces_are_named(kitti_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "k"
    shutil.copytree(kitti_root, root)
    with pytest.raises(DatasetRootError, match="not a folder"):
        build_dataset("kitti", tmp_path / "nowhere", "train", CropOptions())
    name = (root / "train_files.txt").read_text().split()[0]
    date, drive, image = name.split("/")
    oxts = root / "raw_data" / date / drive / "oxts" / "data" / image.replace(".png", ".txt")
    oxts.unlink()
    with pytest.raises(DatasetRootError, match=str(oxts)):
        build_dataset("kitti", root, "train", CropOptions())
    (root / "raw_data" / date / "calib_cam_to_cam.txt").unlink()
    with pytest.raises(DatasetRootError, match="calib_cam_to_cam.txt"):
        build_dataset("kitti", root, "train", CropOptions())
    (root / "test2_files.txt").unlink()
    with pytest.raises(DatasetRootError, match="test2_files.txt"):
        build_dataset("kitti", root, "test2", CropOptions())
    shutil.rmtree(root / "satmap")
    with pytest.raises(DatasetRootError, match="satmap"):
        build_dataset("kitti", root, "train", CropOptions())


def test_kitti_test_line_without_perturbation_is_refused(kitti_root: Path, tmp_path: Path) -> None:
    split = tmp_path / "bare.txt"
    split.write_text((kitti_root / "train_files.txt").read_text())
    with pytest.raises(ValueError, match="test perturbations come from the split file"):
        build_dataset("kitti", kitti_root, "test1", CropOptions(), split_file=split)


def test_kitti_val_is_held_out_from_train(kitti_root: Path) -> None:
    train = build_dataset("kitti", kitti_root, "train", CropOptions(), val_fraction=0.5)
    val = build_dataset("kitti", kitti_root, "val", CropOptions(), val_fraction=0.5)
    assert len(train) == len(val) == 1
    assert train.entries[0][0] != val.entries[0][0]
    # Validation perturbations are fixed across epochs.
    a = float(val[0]["shift_u_m"])
    val.set_epoch(4)
    assert float(val[0]["shift_u_m"]) == a


# ---------------------------------------------------------------------------- Ford

FORD_INTRINSICS = """header:
  seq: 0
  stamp:
    secs: 0
    nsecs: 0
  frame_id: camera_front_left
height: 860
width: 1656
distortion_model: plumb_bob
D: [0.0, 0.0, 0.0, 0.0, 0.0]
K: [945.391406, 0.0, 855.502355, 0.0, 945.668383, 424.223897, 0.0, 0.0, 1.0]
R: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
P: [945.391406, 0.0, 855.502355, 0.0, 0.0, 945.668383, 424.223897, 0.0, 0.0, 0.0, 1.0, 0.0]
binning_x: 0
binning_y: 0
roi:
  x_offset: 0
  y_offset: 0
  height: 0
  width: 0
  do_rectify: False
"""

FORD_EXTRINSICS = """header:
  seq: 0
  stamp:
    secs: 1504882657
    nsecs: 349879264
  frame_id: body
child_frame_id: camera_front_left
transform:
  translation:
    x: 1.8317
    y: -0.2997
    z: -1.3655
  rotation:
    x: 0.4997
    y: 0.5022
    z: 0.4988
    w: 0.4993
"""


def ford_line(rng: np.random.Generator, frame: int, test: bool) -> tuple[str, float, str]:
    yaw_ned = float(rng.uniform(-math.pi, math.pi))
    q = (math.cos(yaw_ned / 2), 0.0, 0.0, math.sin(yaw_ned / 2))
    sat_lat, sat_lon = "42.29424422604817", "-83.21395814067478"
    lat = float(sat_lat) + rng.uniform(-1e-4, 1e-4)
    lon = float(sat_lon) + rng.uniform(-1e-4, 1e-4)
    name = f"{1501859600000000 + frame * 100000}.txt"
    fields = [name, *(f"{v:.9f}" for v in q), f"{lat:.12f}", f"{lon:.12f}", sat_lat, sat_lon]
    if test:
        fields += [f"{v:.8f}" for v in rng.uniform(-1, 1, 3)]
    return " ".join(fields), yaw_ned, name


def mercator(lat: float, lon: float, ref: float) -> np.ndarray:
    s = math.cos(math.radians(ref))
    return np.array([s * 6378137.0 * math.radians(lon),
                     s * 6378137.0 * math.log(math.tan(math.pi * (90 + lat) / 360))])


@pytest.fixture(scope="module")
def ford_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ford")
    calib = root / "Calibration-V2" / "V2"
    calib.mkdir(parents=True)
    (calib / "cameraFrontLeftIntrinsics.yaml").write_text(FORD_INTRINSICS)
    (calib / "cameraFrontLeft_body.yaml").write_text(FORD_EXTRINSICS)
    rng = np.random.default_rng(1)
    for log, test, count, first in (("2017-10-26/V2/Log1", False, 4503, 4500),
                                    ("2017-08-04/V2/Log1", True, 2, 0)):
        lines = []
        for i in range(count):
            line, yaw_ned, name = ford_line(rng, i, test)
            lines.append(line)
            if i < first:
                continue
            f = line.split()
            # Each imaged line gets its own satellite file: same number, distinct spelling.
            f[8] += "0" * (i - first)
            lines[-1] = " ".join(f)
            body = np.array([639.5, 639.5]) + (
                mercator(float(f[5]), float(f[6]), float(f[7]))
                - mercator(float(f[7]), float(f[8]), float(f[7]))
            ) * np.array([1, -1]) / 0.22
            heading = math.pi / 2 - yaw_ned
            sat = root / log / "SatelliteMaps_18" / f"{f[7]}_{f[8]}.png"
            write_png(sat, marked_map((1280, 1280), body, heading, 0.22))
            folder = log.replace("/", "-") + "-FL"
            write_png(root / log / folder / name.replace(".txt", ".png"),
                      np.full((860, 1656, 3), 70, np.uint8))
        name = "grd_sat_quaternion_latlon_test.txt" if test else "grd_sat_quaternion_latlon.txt"
        (root / log / name).write_text("\n".join(lines) + "\n")
    return root


def test_ford_training_frames_follow_the_protocol(ford_root: Path) -> None:
    ds = build_dataset("ford", ford_root, "train", CropOptions(), log=0, val_fraction=0.0)
    assert len(ds) == 3  # lines 4500.. of log 0's range 4500-8500 that exist
    s = ds[0]
    assert s["ground"].shape == (3, 256, 1024)
    k = s["intrinsics"].numpy()
    assert k[0, 0] == pytest.approx(945.391406 * 1024 / 1656, rel=1e-6)
    assert k[1, 2] == pytest.approx((424.223897 + 0.5) * 256 / 860 - 0.5, rel=1e-6)
    assert float(s["mpp"]) == pytest.approx(0.22)
    assert s["camera_to_body"].shape == (4, 4)
    assert s["camera_to_body"][0, 3] == pytest.approx(1.8317)
    for i in range(len(ds)):
        check_markers(ds[i])


def test_ford_test_lines_carry_the_perturbations(ford_root: Path) -> None:
    ds = build_dataset("ford", ford_root, "test", CropOptions(), log=0)
    lines = (ford_root / "2017-08-04/V2/Log1/grd_sat_quaternion_latlon_test.txt").read_text()
    for i, line in enumerate(lines.splitlines()):
        du, dv, t = (float(v) for v in line.split()[9:])
        s = ds[i]
        expected = r_img(10.0 * t, (20.0 * dv, -20.0 * du))
        assert float(s["shift_u_m"]) == pytest.approx(expected[0], abs=1e-3)
        assert float(s["shift_v_m"]) == pytest.approx(expected[1], abs=1e-3)
        assert float(s["yaw_deg"]) == pytest.approx(10.0 * t, abs=1e-4)
        check_markers(s)


def test_ford_missing_calibration_is_named(ford_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "f"
    shutil.copytree(ford_root / "Calibration-V2", root / "Calibration-V2")
    with pytest.raises(DatasetRootError, match="2017-08-04/V2/Log1"):
        build_dataset("ford", root, "test", CropOptions(), log=0)
    (root / "Calibration-V2/V2/cameraFrontLeft_body.yaml").unlink()
    with pytest.raises(DatasetRootError, match="cameraFrontLeft_body.yaml"):
        build_dataset("ford", root, "test", CropOptions(), log=0)


# ---------------------------------------------------------------------------- VIGOR


@pytest.fixture(scope="module")
def vigor_root(tmp_path_factory: pytest.TempPathFactory, shared_datasets: Path) -> Path:
    root = tmp_path_factory.mktemp("vigor")
    city = "Chicago"
    labels = root / "splits__corrected" / city
    labels.mkdir(parents=True)
    shutil.copy(shared_datasets / "vigor" / city / "satellite_list.txt", labels)
    lines = (shared_datasets / "vigor" / city / "same_area_balanced_test__corrected.txt"
             ).read_text().splitlines()[:2]
    (labels / "same_area_balanced_test__corrected.txt").write_text("\n".join(lines) + "\n")
    for line in lines:
        f = line.split()
        pano = np.zeros((1024, 2048, 3), np.uint8)
        pano[:, 1024 - 8 : 1024 + 8, 2] = 255  # blue stripe on the north (centre) column
        write_png(root / city / "panorama" / f[0], pano)
        truth = np.array([319.5 - float(f[3]), 319.5 + float(f[2])])
        write_png(root / city / "satellite" / f[1],
                  marked_map((640, 640), truth, math.pi / 2, 0.111262))
    return root


def test_vigor_positive_offsets_and_sizes(vigor_root: Path, shared_datasets: Path) -> None:
    opts = CropOptions(ground_size=(320, 640), rotation_range_deg=0.0)
    ds = build_dataset("vigor", vigor_root, "test", opts, cities=("Chicago",))
    line = (vigor_root / "splits__corrected/Chicago/same_area_balanced_test__corrected.txt"
            ).read_text().splitlines()[0].split()
    s = ds[0]
    assert s["ground"].shape == (3, 320, 640) and s["satellite"].shape == (3, 512, 512)
    mpp = 0.111262 * 640 / 512
    assert float(s["mpp"]) == pytest.approx(mpp)
    # North along +u, east along +v: the panorama is dr rows south and dc columns west.
    assert float(s["shift_u_m"]) == pytest.approx(-float(line[2]) * 0.111262)
    assert float(s["shift_v_m"]) == pytest.approx(-float(line[3]) * 0.111262)
    assert float(s["yaw_deg"]) == 0.0
    check_markers(s)
    # North stays at the centre column with a known orientation.
    col = centroid(s["ground"][2])[0]
    assert col == pytest.approx(319.5, abs=0.6)


def test_vigor_unknown_orientation_rolls_the_panorama(vigor_root: Path) -> None:
    opts = CropOptions(ground_size=(320, 640), rotation_range_deg=180.0, seed=5)
    ds = build_dataset("vigor", vigor_root, "test", opts, cities=("Chicago",))
    s = ds[1]
    yaw = float(s["yaw_deg"])
    assert yaw != 0.0
    col = centroid(s["ground"][2])[0]
    expected = (319.5 + yaw / 360.0 * 640) % 640
    assert col == pytest.approx(expected, abs=0.6)
    # Test rotations are fixed: a new loader gives the same one, whatever the epoch.
    again = build_dataset("vigor", vigor_root, "test", opts, cities=("Chicago",))
    again.set_epoch(3)
    assert float(again[1]["yaw_deg"]) == yaw


def test_vigor_missing_label_file_is_named(vigor_root: Path) -> None:
    with pytest.raises(DatasetRootError, match="same_area_balanced_train__corrected.txt"):
        build_dataset("vigor", vigor_root, "train", CropOptions(), cities=("Chicago",))
    with pytest.raises(DatasetRootError, match="pano_label_balanced__corrected.txt"):
        build_dataset("vigor", vigor_root, "test", CropOptions(), area="cross",
                      cities=("Chicago",))


# ---------------------------------------------------------------------------- Oxford


@pytest.fixture(scope="module")
def oxford_root(tmp_path_factory: pytest.TempPathFactory, shared_datasets: Path) -> Path:
    from training.datasets.oxford import utm_to_map_fit

    src = shared_datasets / "oxford"
    root = tmp_path_factory.mktemp("oxford")
    for name in ("train_yaw.npy", "val_yaw.npy", "test_yaw.npy"):
        shutil.copy(src / name, root)
    fit = utm_to_map_fit()
    keep: dict[str, list[int]] = {}
    # Pick real lines that fall in the map's top-left 5000 px, so the test map stays small.
    for name in ("training.txt", "validation.txt", "test1_j.txt", "test2_j.txt",
                 "test3_j.txt"):
        lines = (src / name).read_text().splitlines()
        px = np.array([[float(x.split()[2]), float(x.split()[3]), 1.0] for x in lines]) @ fit
        keep[name] = [i for i in np.argsort(px.max(axis=1))[:1] if px[i].max() < 4400]
        (root / name).write_text("\n".join(lines) + "\n")
    return root, keep, fit


def test_oxford_tree_and_markers(oxford_root: tuple, shared_datasets: Path) -> None:
    root, keep, fit = oxford_root
    yaws = {"training.txt": np.delete(np.load(root / "train_yaw.npy"),
                                       [937, 9050, 11811, 12388, 16584]),
            "test2_j.txt": np.load(root / "test_yaw.npy")[1673:1673 + 1708]}
    map_img = np.zeros((5000, 5000, 3), np.uint8)
    layers = [np.ascontiguousarray(map_img[:, :, c]) for c in range(2)]
    for name in ("training.txt", "test2_j.txt"):
        lines = (root / name).read_text().splitlines()
        for i in keep[name]:
            f = lines[i].split()
            truth = np.array([float(f[2]), float(f[3]), 1.0]) @ fit
            heading = math.pi - yaws[name][i]
            ahead = truth + 10.0 / 0.0924 * np.array([math.cos(heading), -math.sin(heading)])
            for centre, layer in ((truth, layers[0]), (ahead, layers[1])):
                c = tuple(int(round(x * 16)) for x in centre)
                cv2.circle(layer, c, 6 * 16, 255, -1, lineType=cv2.LINE_AA, shift=4)
            write_png(root / f[0], np.full((800, 1200, 3), 60, np.uint8))
    map_img[:, :, 0], map_img[:, :, 1] = layers
    write_png(root / "satellite_map_new.png", map_img)

    opts = CropOptions(ground_size=(800, 1200), rotation_range_deg=0.0)
    with pytest.raises(DatasetRootError, match="ground images listed in training.txt"):
        build_dataset("oxford", root, "train", opts)
    train = build_dataset("oxford", root, "train", opts, check_files=False)
    s = train[int(keep["training.txt"][0])]
    assert s["ground"].shape == (3, 800, 1200)
    assert float(s["mpp"]) == pytest.approx(0.0924 * 800 / 512)
    assert float(s["intrinsics"][0, 0]) == pytest.approx(964.828979)
    assert math.hypot(float(s["shift_u_m"]), float(s["shift_v_m"])) <= 200 * 2**0.5 * 0.0924
    check_markers(s, tol_px=0.4)

    test = build_dataset("oxford", root, "test2", CropOptions(rotation_range_deg=10.0,
                                                              ground_size=(200, 300)),
                         check_files=False)
    assert len(test) == 1708
    i = int(keep["test2_j.txt"][0])
    s = test[i]
    assert s["ground"].shape == (3, 200, 300)
    assert float(s["intrinsics"][0, 0]) == pytest.approx(964.828979 / 4)
    # Test priors sit on the 400 px grid, within 200 map px of the truth on each axis.
    assert abs(float(s["yaw_deg"])) <= 10.0
    check_markers(s, tol_px=0.4)
    assert float(test[i]["yaw_deg"]) == float(s["yaw_deg"])


def test_oxford_split_and_yaw_mismatch(oxford_root: tuple, tmp_path: Path) -> None:
    root, _, _ = oxford_root
    bad = tmp_path / "o"
    shutil.copytree(root, bad, ignore=shutil.ignore_patterns("*.png", "2015*"))
    with pytest.raises(DatasetRootError, match="satellite_map_new.png"):
        build_dataset("oxford", bad, "val", CropOptions())
    (bad / "satellite_map_new.png").write_bytes(b"")
    lines = (bad / "validation.txt").read_text().splitlines()
    (bad / "validation.txt").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match="1697 lines but its yaw array gives 1698"):
        build_dataset("oxford", bad, "val", CropOptions(), check_files=False)
