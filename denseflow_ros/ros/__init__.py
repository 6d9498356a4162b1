# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""rclpy glue: the localizer node, message conversion, parameters and diagnostics."""
