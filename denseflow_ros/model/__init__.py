# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The DenseFlow network in pure torch: trunks, BEV projection, refinement, flow, pose."""

from denseflow_ros.model.checkpoint import CheckpointError, load_model, save_checkpoint
from denseflow_ros.model.config import PRESETS, ModelConfig, example_intrinsics, get_preset
from denseflow_ros.model.network import (
    DenseFlow,
    DenseFlowFeatures,
    DenseFlowOutput,
    DenseFlowTrainingOutput,
    visibility_mask,
)
from denseflow_ros.model.pose import analytic_flow, solve_pose

__all__ = [
    "PRESETS",
    "CheckpointError",
    "DenseFlow",
    "DenseFlowFeatures",
    "DenseFlowOutput",
    "DenseFlowTrainingOutput",
    "ModelConfig",
    "analytic_flow",
    "example_intrinsics",
    "get_preset",
    "load_model",
    "save_checkpoint",
    "solve_pose",
    "visibility_mask",
]
