# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Bags are written beside their destination and never cost a user's data when a step fails."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from test_bag_convert import DRIVE, make_kitti

from denseflow_ros import bagio
from denseflow_ros.cli import main as cli_main
from denseflow_ros.tools import bag_common


def _pose(i: int) -> object:
    return bagio.pose_stamped_msg(i, "enu", (float(i), 0.0, 0.0))


def _write(path: Path, n: int, **kwargs: object) -> None:
    with bagio.BagWriter(path, **kwargs) as bag:
        for i in range(n):
            bag.write("/gt", "geometry_msgs/msg/PoseStamped", i + 1, _pose(i))


def test_overwrite_refuses_a_folder_that_is_not_a_bag(tmp_path: Path) -> None:
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("years of work")
    with pytest.raises(bagio.BagError, match="not a rosbag2 folder"):
        _write(thesis, 1, overwrite=True)
    assert (thesis / "chapter1.tex").read_text() == "years of work"
    note = tmp_path / "notes.txt"
    note.write_text("keep me")
    with pytest.raises(bagio.BagError, match="not a rosbag2 folder"):
        _write(note, 1, overwrite=True)
    assert note.read_text() == "keep me"
    # A partial recording folder that holds something else is not removed either.
    (tmp_path / "bag.partial").mkdir()
    (tmp_path / "bag.partial" / "data.csv").write_text("1,2")
    with pytest.raises(bagio.BagError, match="not a partial recording"):
        _write(tmp_path / "bag", 1)
    assert (tmp_path / "bag.partial" / "data.csv").read_text() == "1,2"


def test_overwrite_replaces_a_bag_only_once_the_new_one_is_complete(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    _write(bag, 2)
    with pytest.raises(RuntimeError), bagio.BagWriter(bag, overwrite=True) as writer:
        writer.write("/gt", "geometry_msgs/msg/PoseStamped", 1, _pose(0))
        raise RuntimeError("conversion failed")
    assert bagio.bag_topics(bag) == {"/gt": ("geometry_msgs/msg/PoseStamped", 2)}
    # What the failed run wrote is kept, closed and readable, beside the destination.
    partial = tmp_path / "bag.partial" / "bag"
    assert bagio.bag_topics(partial) == {"/gt": ("geometry_msgs/msg/PoseStamped", 1)}
    _write(bag, 3, overwrite=True)
    assert bagio.bag_topics(bag) == {"/gt": ("geometry_msgs/msg/PoseStamped", 3)}
    assert not (tmp_path / "bag.partial").exists()
    assert sorted(p.name for p in bag.iterdir()) == ["bag.mcap", "metadata.yaml"]


def test_failed_close_leaves_no_bag_and_keeps_the_partial(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rosbags.rosbag2 import Writer

    def disk_full(self: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Writer, "close", disk_full)
    bag = tmp_path / "bag"
    with pytest.raises(bagio.BagError, match="could not be finished.*bag.partial"):
        _write(bag, 4)
    assert not bag.exists()
    storage = list((tmp_path / "bag.partial" / "bag").glob("*.mcap"))
    assert len(storage) == 1 and storage[0].stat().st_size > 0


def test_kitti_tile_failure_keeps_the_bag(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    make_kitti(tmp_path / "KITTI", with_satmaps=True)
    out = tmp_path / "bag"
    args = ["bag", "kitti", "--root", str(tmp_path / "KITTI"), "--drive", DRIVE,
            "--out", str(out)]
    assert cli_main([*args, "--no-tiles"]) == 0
    before = bagio.bag_topics(out)

    def broken(*_: object) -> dict:
        raise ValueError("satellite image is truncated")

    monkeypatch.setattr(bag_common, "build_tile_cache", broken)
    assert cli_main([*args, "--overwrite"]) == 1
    assert "satellite image is truncated" in capsys.readouterr().err
    assert bagio.bag_topics(out) == before
