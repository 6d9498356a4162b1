# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Exports of the synthetic world: tile caches, a rosbag2 of a drive, a KITTI-layout tree."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from denseflow_ros.sim import Drive, World, generate_world, kitti_intrinsics, simulate_drive
from denseflow_ros.sim.export import (
    DEFAULT_BAG_TOPICS,
    KITTI_CAMERA_FROM_OXTS_M,
    KITTI_SATMAP_MPP,
    KittiDrive,
    export_bag,
    export_kitti,
    export_tiles,
    frame_stamp_ns,
)

IMAGE_SIZE = (414, 125)  # KITTI's 1242 x 375 divided by three


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(21, size_m=300.0, lat=49.01, lon=8.42)


@pytest.fixture(scope="module")
def drive(world: World) -> Drive:
    return simulate_drive(world, seed=2, n_frames=4)


def world_crop(world: World, east: float, north: float, heading_rad: float, size_px: int,
               mpp: float) -> np.ndarray:
    """Heading-aligned crop of the orthophoto by the crop convention's pixel -> ENU formulas."""
    import cv2

    c = size_px // 2
    v, u = np.mgrid[0:size_px, 0:size_px].astype(np.float64)
    fwd, left = (u - c) * mpp, -(v - c) * mpp
    e = east + fwd * math.cos(heading_rad) - left * math.sin(heading_rad)
    n = north + fwd * math.sin(heading_rad) + left * math.cos(heading_rad)
    col, row = world.enu_to_pixel(e, n)
    return cv2.remap(world.ortho, col.astype(np.float32), row.astype(np.float32),
                     cv2.INTER_LINEAR)


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


@pytest.mark.parametrize("name", ["cache.mbtiles", "xyz"])
def test_tile_cache_crops_line_up_with_the_orthophoto(world: World, tmp_path: Path,
                                                      name: str) -> None:
    from denseflow_ros.geo import SatelliteCache

    export_tiles(world, tmp_path / name, progress=False)
    with SatelliteCache(tmp_path / name) as cache:
        for east, north, heading in ((0.0, 0.0, 0.0), (-40.0, 25.0, 35.0), (30.0, -50.0, 200.0)):
            lat, lon = world.enu.inverse(east, north)
            crop = cache.crop(lat, lon, heading, 128, world.mpp)
            assert crop.coverage == 1.0
            ref = world_crop(world, east, north, math.radians(heading), 128, world.mpp)
            aligned = mean_abs(crop.image, ref)
            assert aligned < 8.0, aligned
            # A shift of one pixel is clearly worse: the crops line up to a fraction of one.
            for de, dn in ((world.mpp, 0.0), (0.0, world.mpp)):
                shifted = world_crop(world, east + de, north + dn, math.radians(heading), 128,
                                     world.mpp)
                assert mean_abs(crop.image, shifted) > aligned * 1.5


def test_bag_opens_with_rosbags_and_mcap(world: World, drive: Drive, tmp_path: Path) -> None:
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    from rosbags.highlevel import AnyReader

    from denseflow_ros import bagio

    w, h = IMAGE_SIZE
    out = tmp_path / "drive"
    summary = export_bag(world, drive, out, width=w, height=h, progress=False)
    assert summary["frames"] == 4
    t = DEFAULT_BAG_TOPICS
    with AnyReader([out]) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        assert counts == {topic: 4 for topic in t.values()}
        types = {c.topic: c.msgtype for c in reader.connections}
        assert types[t["image"]] == "sensor_msgs/msg/Image"
        assert types[t["ground_truth"]] == "geometry_msgs/msg/PoseStamped"
        msgs = {topic: [] for topic in t.values()}
        for conn, stamp, raw in reader.messages():
            msgs[conn.topic].append((stamp, reader.deserialize(raw, conn.msgtype)))
    for i in range(4):
        stamp, img = msgs[t["image"]][i]
        assert stamp == frame_stamp_ns(drive, i)
        assert bagio.image_array(img).shape == (h, w, 3)
        _, fix = msgs[t["fix"]][i]
        assert fix.latitude == pytest.approx(drive.gnss_lat[i], abs=1e-12)
        assert fix.position_covariance[0] == pytest.approx(drive.gnss_cov[i, 0, 0])
        _, imu = msgs[t["imu"]][i]
        yaw = bagio.yaw_from_quaternion(imu.orientation.x, imu.orientation.y,
                                        imu.orientation.z, imu.orientation.w)
        assert yaw == pytest.approx(drive.imu_yaw_rad[i], abs=1e-9)
        _, gt = msgs[t["ground_truth"]][i]
        assert gt.header.frame_id == "map"
        assert gt.pose.position.x == pytest.approx(drive.east[i])
        assert gt.pose.position.y == pytest.approx(drive.north[i])
        _, info = msgs[t["camera_info"]][i]
        np.testing.assert_allclose(np.reshape(info.k, (3, 3)), kitti_intrinsics(w, h))
    meta = (out / "metadata.yaml").read_text()
    for key in ("datum_lat", "datum_lon", "ground_truth_topic", "fix_topic", "imu_topic"):
        assert key in meta
    # The mcap reader decodes the same file with its own ROS 2 decoder.
    mcap_file = next(out.glob("*.mcap"))
    with open(mcap_file, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        seen: dict[str, int] = {}
        for _, channel, _, decoded in reader.iter_decoded_messages():
            seen[channel.topic] = seen.get(channel.topic, 0) + 1
            if channel.topic == t["image"]:
                assert (decoded.height, decoded.width, decoded.encoding) == (h, w, "rgb8")
    assert seen == {topic: 4 for topic in t.values()}


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_delivers_each_frames_prior_before_its_image(world: World, drive: Drive,
                                                         tmp_path: Path, storage: str) -> None:
    from denseflow_ros import bagio

    export_bag(world, drive, tmp_path / "drive", width=207, height=63, storage=storage,
               progress=False)
    t = DEFAULT_BAG_TOPICS
    # The order a player reads (and publishes) the bag in.
    seen = [(m.stamp_ns, m.topic) for m in bagio.iter_messages(tmp_path / "drive")]
    frame_topics = [t[k] for k in ("fix", "imu", "camera_info", "image", "ground_truth")]
    assert seen == [(frame_stamp_ns(drive, i), topic) for i in range(len(drive))
                    for topic in frame_topics]


@pytest.mark.timeout(300)
def test_dead_render_worker_is_an_error_not_a_hang(world: World, drive: Drive, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from denseflow_ros.sim import export

    parent = os.getpid()
    render = export.render_ground
    doomed_seed = drive.seed * 100_003 + 2  # frame 2's render seed

    def dies_on_frame_2(*args: object, **kwargs: object) -> np.ndarray:
        if os.getpid() != parent and kwargs["seed"] == doomed_seed:
            os._exit(3)  # as the kernel's out-of-memory killer would end it
        return render(*args, **kwargs)

    monkeypatch.setattr(export, "render_ground", dies_on_frame_2)
    with pytest.raises(ChildProcessError, match="rendering process died"):
        export_bag(world, drive, tmp_path / "drive", width=207, height=63, progress=False,
                   jobs=2)


def test_kitti_layout_files_parse_in_the_real_formats(world: World, drive: Drive,
                                                      tmp_path: Path) -> None:
    import cv2

    other = generate_world(22, size_m=300.0)
    test2 = simulate_drive(other, seed=3, n_frames=2)
    test1 = simulate_drive(world, seed=9, n_frames=2)
    root = tmp_path / "kitti"
    w, h = IMAGE_SIZE
    export_kitti(root, [KittiDrive(world, drive, "train"), KittiDrive(world, test1, "test1"),
                        KittiDrive(other, test2, "test2")], image_size=IMAGE_SIZE,
                 satmap_px=640, progress=False)
    train = (root / "train_files.txt").read_text().splitlines()
    assert train == [f"2026_01_01/2026_01_01_drive_0001_sync/{i:010d}.png" for i in range(4)]
    t1 = (root / "test1_files.txt").read_text().splitlines()
    t2 = (root / "test2_files.txt").read_text().splitlines()
    assert [x.split()[0][:38] for x in t1] == ["2026_01_01/2026_01_01_drive_0002_sync/"] * 2
    assert [x.split()[0][:38] for x in t2] == ["2026_01_02/2026_01_02_drive_0001_sync/"] * 2
    for line in t1 + t2:
        fields = line.split(" ")
        assert len(fields) == 4 and all(-1.0 <= float(x) <= 1.0 for x in fields[1:])
    # The original loader slices names at fixed offsets: date [:10], drive [:38], frame [38:].
    name = train[2]
    day, drive_dir, image_no = name[:10], name[:38], name[38:]
    base = root / "raw_data" / drive_dir
    calib = (root / "raw_data" / day / "calib_cam_to_cam.txt").read_text().splitlines()
    p_rect = next(x for x in calib if x.startswith("P_rect_02"))
    values = p_rect.split(":")[1].strip().split(" ")
    assert len(values) == 12
    k = kitti_intrinsics(w, h)
    assert float(values[0]) == pytest.approx(k[0, 0], rel=1e-6)
    assert float(values[2]) == pytest.approx(k[0, 2], rel=1e-6)
    assert float(values[5]) == pytest.approx(k[1, 1], rel=1e-6)
    assert float(values[6]) == pytest.approx(k[1, 2], rel=1e-6)
    for cam in ("00", "01", "02", "03"):
        for key in ("S", "K", "D", "R", "T", "S_rect", "R_rect", "P_rect"):
            assert any(x.startswith(f"{key}_{cam}: ") for x in calib), (key, cam)
    image = cv2.imread(str(base / "image_02" / "data" / image_no.lower()))
    assert image.shape == (h, w, 3)
    oxts = (base / "oxts" / "data" / image_no.lower().replace(".png", ".txt")).read_text()
    content = oxts.strip().split(" ")
    assert len(content) == 30
    assert [int(x) for x in content[-5:]] == [4, 10, 4, 4, 0]
    i = 2
    assert float(content[5]) == pytest.approx(drive.yaw_rad[i], abs=1e-12)
    # The camera is 1.08 m ahead of and 0.26 m right of the OXTS position.
    oe, on = world.enu.forward(float(content[0]), float(content[1]))
    yaw = drive.yaw_rad[i]
    fwd_m, right_m = KITTI_CAMERA_FROM_OXTS_M
    assert oe + fwd_m * math.cos(yaw) + right_m * math.sin(yaw) == pytest.approx(
        drive.east[i], abs=1e-3)
    assert on + fwd_m * math.sin(yaw) - right_m * math.cos(yaw) == pytest.approx(
        drive.north[i], abs=1e-3)
    assert len((base / "oxts" / "timestamps.txt").read_text().splitlines()) == 4
    assert (base / "oxts" / "dataformat.txt").read_text().split()[:3] == ["lat", "lon", "alt"]
    # The satellite map is north-up, centred on the OXTS position, at KITTI's resolution.
    sat = cv2.imread(str(root / "satmap" / name))[:, :, ::-1]
    assert sat.shape == (640, 640, 3)
    # Pixel p of it lies (p - 319.5) pixels east of the OXTS position (south for rows).
    half = 0.5 * KITTI_SATMAP_MPP
    expect = world_crop(world, oe + half, on - half, 0.0, 640, KITTI_SATMAP_MPP)
    assert mean_abs(sat, expect) < 1.0


def test_kitti_export_loads_through_the_training_loader(world: World, drive: Drive,
                                                        tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from training.datasets.common import CropOptions
    from training.datasets.kitti import KittiDataset

    test1 = simulate_drive(world, seed=9, n_frames=3)
    root = tmp_path / "kitti"
    export_kitti(root, [KittiDrive(world, drive, "train"), KittiDrive(world, test1, "test1")],
                 image_size=IMAGE_SIZE, satmap_px=1280, progress=False)
    options = CropOptions(ground_size=(128, 512), satellite_size=256)
    ds = KittiDataset(root, "test1", options)
    assert len(ds) == 3
    for i in range(3):
        sample = ds[i]
        np.testing.assert_allclose(sample["intrinsics"].numpy(), kitti_intrinsics(512, 128),
                                   rtol=1e-5)
        su, sv, yaw_deg = (float(sample[k]) for k in ("shift_u_m", "shift_v_m", "yaw_deg"))
        mpp = float(sample["mpp"])
        # Undo the labels: the prior the crop is centred on, by the crop convention's formulas.
        h = test1.yaw_rad[i] - math.radians(yaw_deg)
        pe = test1.east[i] - (math.cos(h) * su + math.sin(h) * sv)
        pn = test1.north[i] - (math.sin(h) * su - math.cos(h) * sv)
        ref = world_crop(world, pe, pn, h, 256, mpp)
        sat = (sample["satellite"].numpy().transpose(1, 2, 0) * 255.0).round()
        aligned = mean_abs(sat, ref)
        assert aligned < 10.0, aligned
        off = world_crop(world, pe + 0.6, pn, h, 256, mpp)
        assert mean_abs(sat, off) > aligned + 2.0


def test_parallel_export_writes_the_same_files(world: World, drive: Drive,
                                               tmp_path: Path) -> None:
    outputs = []
    for jobs in (1, 2):
        root = tmp_path / f"jobs{jobs}"
        export_kitti(root, [KittiDrive(world, drive, "test1")], image_size=(207, 63),
                     satmap_px=128, progress=False, jobs=jobs)
        outputs.append({p.relative_to(root): p.read_bytes() for p in root.rglob("*")
                        if p.is_file()})
    assert len(outputs[0]) == 4 * 3 + 3 + 3 + 1 + 1  # frames, per-drive, splits, calib, info
    assert outputs[0] == outputs[1]


def test_sim_tools_run_without_a_command_line(tmp_path: Path) -> None:
    import cv2

    from denseflow_ros.tools import sim as sim_tool

    world_options = sim_tool.WorldOptions(size_m=300.0, lat=49.01, lon=8.42)
    made = sim_tool.make_world(21, str(tmp_path / "w.npz"), world_options,
                               ortho=str(tmp_path / "ortho.png"))
    assert made.pixels[:2] == [1500, 1500] and made.center == [49.01, 8.42]
    assert cv2.imread(str(tmp_path / "ortho.png")).shape[:2] == (1500, 1500)
    drive = sim_tool.make_drive(made.out, 2, 4, str(tmp_path / "d.npz"))
    assert drive.frames == 4 and drive.duration_s == pytest.approx(0.3)
    assert drive.distance_m > 0 and drive.gnss_error_median_m > 0
    camera = sim_tool.CameraOptions(image_size=IMAGE_SIZE)
    frame = sim_tool.render_frame(made.out, drive.out, 3, str(tmp_path / "f.png"), camera)
    assert frame.size == list(IMAGE_SIZE)
    assert cv2.imread(frame.out).shape == (IMAGE_SIZE[1], IMAGE_SIZE[0], 3)
    with pytest.raises(ValueError, match="--frame must be in 0..3"):
        sim_tool.render_frame(made.out, drive.out, 4, str(tmp_path / "g.png"), camera)
    options = sim_tool.KittiExportOptions(world=world_options, drives_per_world=1,
                                          test_drives_per_world=0, frames=2, camera=camera,
                                          satmap_px=64, progress=False)
    sim_tool.export_kitti_drives(str(tmp_path / "kitti"), [21], [], options)
    assert len(list((tmp_path / "kitti").rglob("image_02/data/*.png"))) == 2
