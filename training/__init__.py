# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Offline training and evaluation of DenseFlow on KITTI, Ford multi-AV, VIGOR and Oxford."""
