# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Test-wide settings: DDS stays on loopback, every test that speaks DDS gets its own domain."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from denseflow_ros.dds import apply_loopback_env, loopback_env

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"

# Set before any test imports rclpy: the in-process context reads these at init.
_BASE_DOMAIN = int(os.environ.get("ROS_DOMAIN_ID", str(20 + os.getpid() % 40)))
apply_loopback_env(_BASE_DOMAIN)
_domains = itertools.count(1)


@pytest.fixture
def ros_domain() -> int:
    """Return a DDS domain id no other test in this run uses."""
    return 60 + (_BASE_DOMAIN + next(_domains)) % 40


@pytest.fixture
def ros_env(ros_domain: int) -> dict[str, str]:
    """Environment for a child process that speaks DDS on this test's own domain."""
    env = loopback_env(ros_domain)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """Return the benchmarks' real split and label files (``../shared/datasets``)."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"benchmark split files not found at {SHARED_DATASETS}")
    return SHARED_DATASETS
