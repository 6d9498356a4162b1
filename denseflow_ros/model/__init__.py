# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The DenseFlow network in pure torch: trunks, BEV projection, refinement, flow, pose."""
