# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""DDS set-up shared by ``denseflow replay``, ``record`` and ``evaluate``.

Policy (``--dds auto``, the default): when the user has said how far DDS may reach (any of
``ROS_LOCALHOST_ONLY``, ``ROS_AUTOMATIC_DISCOVERY_RANGE``, ``ROS_STATIC_PEERS``,
``FASTDDS_DEFAULT_PROFILES_FILE``, ``FASTRTPS_DEFAULT_PROFILES_FILE`` or ``CYCLONEDDS_URI``
is set) the tool uses that environment unchanged, exactly as ``ros2 bag play`` would;
otherwise it confines itself to loopback with the package's shared-memory profile
(:func:`denseflow_ros.dds.loopback_env`), so an invocation that only picks a domain
(``ROS_DOMAIN_ID``, ``--domain-id``) or a middleware (``RMW_IMPLEMENTATION``) never sends
DDS traffic onto the network. ``--dds loopback`` always confines, ``--dds inherit`` never
does.
"""

from __future__ import annotations

import argparse
import importlib
import os
from typing import Any

# Variables that decide how far DDS reaches; a domain id or a middleware choice does not.
USER_ROS_VARIABLES = (
    "ROS_LOCALHOST_ONLY", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS",
    "FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE", "CYCLONEDDS_URI",
)


def add_dds_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--dds`` and ``--domain-id``."""
    parser.add_argument(
        "--dds", choices=("auto", "loopback", "inherit"), default="auto",
        help="auto: keep an environment that sets DDS's reach (ROS_LOCALHOST_ONLY, "
             "ROS_AUTOMATIC_DISCOVERY_RANGE, a DDS profile ...), else loopback only "
             "(default); "
             "loopback: always loopback with the shared-memory profile; inherit: never change "
             "the environment")
    parser.add_argument("--domain-id", type=int, default=None,
                        help="ROS_DOMAIN_ID to use (overrides the environment's)")


def choose_env(mode: str, domain_id: int | None,
               environ: dict[str, str] | None = None) -> tuple[dict[str, str], str]:
    """Return the environment DDS should run with and a short description of the choice."""
    from denseflow_ros.dds import loopback_env

    env = dict(os.environ if environ is None else environ)
    configured = [name for name in USER_ROS_VARIABLES if env.get(name)]
    if mode == "inherit" or (mode == "auto" and configured):
        if domain_id is not None:
            env["ROS_DOMAIN_ID"] = str(domain_id)
        how = "environment as set" + (f" ({', '.join(configured)})" if configured else "")
        return env, how
    domain = domain_id if domain_id is not None else int(env.get("ROS_DOMAIN_ID") or 0)
    return loopback_env(domain, base=env), f"loopback only, domain {domain}"


def apply_env(mode: str, domain_id: int | None) -> str:
    """Set this process's DDS environment per ``--dds``/``--domain-id`` (before rclpy.init)."""
    env, how = choose_env(mode, domain_id)
    os.environ.update(env)
    return how


def message_class(msg_type: str) -> Any:
    """Return the rclpy message class of ``pkg/msg/Type``; ValueError when not installed."""
    from denseflow_ros.bagio import normalize_msg_type

    pkg, _, name = normalize_msg_type(msg_type).split("/")
    try:
        return getattr(importlib.import_module(f"{pkg}.msg"), name)
    except (ImportError, AttributeError):
        raise ValueError(f"message type {msg_type} is not installed for rclpy") from None


def qos_profile(reliability: str, depth: int = 10) -> Any:
    """Return a keep-last QoS profile with ``reliability`` 'reliable' or 'best_effort'."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    policy = (ReliabilityPolicy.RELIABLE if reliability == "reliable"
              else ReliabilityPolicy.BEST_EFFORT)
    return QoSProfile(depth=depth, reliability=policy)
