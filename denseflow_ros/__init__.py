# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""DenseFlow cross-view localization of a ground vehicle against satellite imagery."""

__version__ = "0.1.0"
