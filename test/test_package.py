# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The ROS package builds with colcon and installs what ``ros2 run``/``ros2 launch`` need."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _package_xml() -> ET.Element:
    return ET.parse(REPO_ROOT / "package.xml").getroot()


def test_package_xml_is_format_3_ament_python() -> None:
    root = _package_xml()
    assert root.get("format") == "3"
    assert root.findtext("name") == "denseflow_ros"
    assert root.findtext("export/build_type") == "ament_python"
    assert root.findtext("license") == "Apache-2.0"


def test_runtime_dependencies_are_declared() -> None:
    declared = {e.text for e in _package_xml() if e.tag in ("exec_depend", "depend")}
    for key in ("rclpy", "sensor_msgs", "geometry_msgs", "nav_msgs", "diagnostic_msgs",
                "python3-numpy", "python3-opencv", "python3-pyproj", "python3-torch"):
        assert key in declared, f"package.xml lacks <exec_depend>{key}</exec_depend>"


def test_colcon_build_installs_executables_launch_and_config(tmp_path: Path) -> None:
    colcon = shutil.which("colcon") or str(Path(sys.executable).with_name("colcon"))
    if not Path(colcon).exists():
        pytest.skip("colcon is not installed (pip install colcon-core colcon-ros)")
    src = tmp_path / "src" / "denseflow_ros"
    shutil.copytree(
        REPO_ROOT, src,
        ignore=shutil.ignore_patterns(".venv", ".git", "build", "install", "log", "demo-output",
                                      "__pycache__", "*.egg-info", ".cache"),
    )
    result = subprocess.run([colcon, "build"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    prefix = tmp_path / "install" / "denseflow_ros"
    for script in ("localizer_node", "denseflow"):
        assert (prefix / "lib" / "denseflow_ros" / script).is_file()
    share = prefix / "share" / "denseflow_ros"
    assert (share / "package.xml").is_file()
    assert (share / "launch" / "localize.launch.py").is_file()
    assert (share / "config" / "localize.yaml").is_file()
    index = prefix / "share" / "ament_index" / "resource_index" / "packages" / "denseflow_ros"
    assert index.is_file()
    profiles = list((prefix / "lib").glob("python*/site-packages/denseflow_ros/resources/*.xml"))
    assert profiles, "the Fast DDS profile is not installed as package data"
