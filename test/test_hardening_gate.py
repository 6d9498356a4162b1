# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The acceptance gate holds for covariances and confidences that are not numbers it can use."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_localizer import FixedOutput, _localizer
from test_node_support import LAT0, LON0, frame_image, intrinsics, write_tile_cache

from denseflow_ros.geo import SatelliteCache
from denseflow_ros.localizer import Frame, MapFrame, Prior, Thresholds
from denseflow_ros.model import get_preset


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> SatelliteCache:
    return SatelliteCache(write_tile_cache(tmp_path_factory.mktemp("tiles") / "xyz"))


FRAME = Frame(frame_image(0), intrinsics())


def test_indefinite_or_singular_fix_covariance_is_treated_as_unknown(
        cache: SatelliteCache) -> None:
    # The estimate is 42 m ahead of the prior: far outside a 3 sigma gate of a 10 m fix.
    far = _localizer(FixedOutput(42.0, 0.0, 0.0, np.eye(3) * 0.01), cache,
                     MapFrame("enu", (LAT0, LON0)))
    for cov in ([[1.0, 10.0], [10.0, 1.0]], [[4.0, 4.0], [4.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]],
                [[-25.0, 0.0], [0.0, -25.0]]):
        for floor in (2.0, 0.0):
            est = far.localize(FRAME, Prior(LAT0, LON0, 0.0, np.array(cov)),
                               Thresholds(gate_sigma=3.0, gate_floor_m=floor))
            assert est.rejection == "outside_gate", (cov, floor)
            assert est.gate_distance == pytest.approx(42.0 / math.hypot(10.0, floor), rel=1e-3)
    # An asymmetric covariance is symmetrised before it is used.
    est = far.localize(FRAME, Prior(LAT0, LON0, 0.0, np.array([[400.0, 0.0], [2.0, 400.0]])),
                       Thresholds(gate_sigma=3.0, gate_floor_m=0.0))
    assert est.rejection is None and est.gate_distance == pytest.approx(2.1, abs=0.01)


def test_nan_confidence_is_rejected(cache: SatelliteCache) -> None:
    nan = _localizer(FixedOutput(0.0, 0.0, 0.0, np.eye(3) * 0.01, confidence=math.nan), cache,
                     MapFrame("enu", (LAT0, LON0)))
    est = nan.localize(FRAME, Prior(LAT0, LON0, 0.0), Thresholds(min_confidence=0.5))
    assert est.rejection == "low_confidence"


class NanForOneHeading:
    """A model whose confidence is NaN for the first crop and 0.3 + 0.01 i for crop i."""

    config = get_preset("lite")

    def __call__(self, ground, satellite, intrinsics, satellite_mpp=None, camera_height_m=None):
        b, s = satellite.shape[0], satellite.shape[-1]
        conf = 0.3 + 0.01 * torch.arange(b, dtype=torch.float32)
        conf[0] = math.nan
        return SimpleNamespace(
            shift_u_m=torch.zeros(b), shift_v_m=torch.zeros(b), yaw_deg=torch.zeros(b),
            covariance=torch.eye(3).expand(b, 3, 3) * 0.01,
            confidence=conf[:, None, None, None].expand(b, 1, s, s).contiguous(),
            mask=torch.ones(b, 1, s, s, dtype=bool))


def test_heading_search_never_picks_a_nan_hypothesis(cache: SatelliteCache) -> None:
    loc = _localizer(NanForOneHeading(), cache, MapFrame("enu", (LAT0, LON0)))
    loc.yaw_hypotheses = 6
    est = loc.localize(FRAME, Prior(LAT0, LON0, None), Thresholds(min_confidence=0.0))
    assert est.rejection is None
    assert est.confidence == pytest.approx(0.35)
    assert est.heading_enu_rad == pytest.approx(math.remainder(2 * math.pi * 5 / 6, 2 * math.pi))
