# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""DDS settings that keep ROS 2 traffic on this host and let camera frames through."""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources

PROFILE_NAME = "fastdds_loopback.xml"


def profile_path() -> str:
    """Return the path of the shipped Fast DDS profile (SHM 16 MB + loopback-only UDP)."""
    return str(resources.files("denseflow_ros").joinpath("resources", PROFILE_NAME))


def loopback_env(domain_id: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return an environment that confines DDS to loopback on ``domain_id``.

    Used by the tests, the demo and CI for every process that speaks DDS, so that Fast DDS
    never multicasts on a network interface and large images are not dropped.
    """
    if not 0 <= domain_id <= 101:
        raise ValueError(f"ROS_DOMAIN_ID must be in [0, 101], got {domain_id}")
    env = dict(os.environ if base is None else base)
    env.update(
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        ROS_LOCALHOST_ONLY="1",
        ROS_DOMAIN_ID=str(domain_id),
        FASTDDS_DEFAULT_PROFILES_FILE=profile_path(),
        RMW_IMPLEMENTATION=env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"),
    )
    return env


def apply_loopback_env(domain_id: int) -> None:
    """Set :func:`loopback_env` in this process (before rclpy is initialised)."""
    os.environ.update(loopback_env(domain_id, base={}))
