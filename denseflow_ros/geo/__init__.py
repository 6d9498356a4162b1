# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Geodesy and satellite imagery: tile sources, metric crops, map projections (no torch)."""
