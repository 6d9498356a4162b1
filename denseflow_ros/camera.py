# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Pinhole intrinsics under a resize: the one rule training, evaluation and the node share.

Pixel centres are integers, so pixel edges sit at -0.5 and W - 0.5. Resizing an image from
W0 to W maps the edge -0.5 to -0.5 and W0 - 0.5 to W - 0.5: ``u' = (u + 0.5) * W / W0 - 0.5``.
The focal lengths scale by the size ratios, the principal point follows the edge rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def scale_intrinsics(
    k: np.ndarray, from_wh: Sequence[float], to_hw: Sequence[int]
) -> np.ndarray:
    """Rescale a 3x3 pinhole matrix from an image of (W, H) ``from_wh`` to (H, W) ``to_hw``."""
    k = np.asarray(k, dtype=np.float64).reshape(3, 3)
    sx = float(to_hw[1]) / float(from_wh[0])
    sy = float(to_hw[0]) / float(from_wh[1])
    out = np.array(
        [[k[0, 0] * sx, k[0, 1] * sx, (k[0, 2] + 0.5) * sx - 0.5],
         [0.0, k[1, 1] * sy, (k[1, 2] + 0.5) * sy - 0.5],
         [0.0, 0.0, 1.0]]
    )
    return out
