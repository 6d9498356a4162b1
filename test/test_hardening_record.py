# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``denseflow record`` keeps what it recorded when the disk fills up."""

from __future__ import annotations

import argparse
import errno
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from denseflow_ros import bagio
from denseflow_ros.tools import record

pytest.importorskip("rclpy")

PUBLISHER = textwrap.dedent(
    """
    import rclpy
    from std_msgs.msg import String

    rclpy.init()
    node = rclpy.create_node("record_source")
    pub = node.create_publisher(String, "/chatter", 100)
    i = 0

    def tick() -> None:
        global i
        pub.publish(String(data=str(i)))
        i += 1

    node.create_timer(0.02, tick)
    rclpy.spin(node)
    """
)


def test_full_disk_keeps_the_messages_recorded_before_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ros_env: dict[str, str],
        ros_domain: int, capsys: pytest.CaptureFixture) -> None:
    written = {"n": 0}
    real_write = bagio.BagWriter.write

    def filling_disk(self: bagio.BagWriter, *args: object) -> None:
        if written["n"] == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, *args)
        written["n"] += 1

    monkeypatch.setattr(bagio.BagWriter, "write", filling_disk)
    parser = argparse.ArgumentParser()
    record.add_arguments(parser)
    out = tmp_path / "rec"
    args = parser.parse_args(["--topics", "/chatter", "--out", str(out), "--duration", "60",
                              "--discovery-timeout", "60", "--dds", "loopback",
                              "--domain-id", str(ros_domain)])
    source = subprocess.Popen([sys.executable, "-c", PUBLISHER], env=ros_env)
    try:
        status = record.main(args)
    finally:
        source.terminate()
        source.wait(timeout=30)
    captured = capsys.readouterr()
    assert status == 1
    assert "No space left on device" in captured.err
    summary = json.loads(captured.out)
    assert summary["written"] == {"/chatter": 5} and not summary["interrupted"]
    data = [m.msg.data for m in bagio.iter_messages(out)]
    assert len(data) == 5 and [int(d) for d in data] == sorted(int(d) for d in data)
