# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What every benchmark loader shares: root checks, image decoding, crops, targets, RNG.

A sample is a dict of tensors in the package's conventions (see "Sign conventions" in README.md):

- ``ground`` (3, H, W) float32 RGB in [0, 1]; ``intrinsics`` (3, 3) for that size;
- ``satellite`` (3, S, S) float32 RGB in [0, 1], centred on the prior position and turned so
  that the prior heading points along +u;
- ``shift_u_m``, ``shift_v_m``, ``yaw_deg``: the true pose relative to the crop centre (+u,
  +v metres, counter-clockwise degrees), i.e. the network's regression targets;
- ``mpp`` (the crop's metres per pixel), ``camera_height_m`` and ``index``.

Every crop is one affine warp of the source image with OpenCV, so the geometry is exact: a
crop pixel ``p`` samples the source at ``q0 + s * (f * (p_u - c) + r * (p_v - c))`` where
``q0`` is the prior in source pixels, ``f``/``r`` the prior's forward/right unit vectors in the
source image and ``s`` the ratio of crop to source pixel size.

Randomness: a training sample's perturbation comes from ``numpy.random.default_rng((seed,
epoch, index))``, so it is independent of worker processes, new every epoch and reproduced
exactly on resume. Test perturbations are read from the split files; where a protocol has
none for some quantity (VIGOR's test rotation) it is drawn from ``(seed, index)`` only, the
same on every run.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from denseflow_ros.camera import scale_intrinsics


class DatasetRootError(FileNotFoundError):
    """A dataset root lacks a file or folder its published layout requires."""


def require(path: Path, what: str, dataset: str) -> Path:
    """Return ``path`` if it exists, else raise ``DatasetRootError`` naming it."""
    if not path.exists():
        raise DatasetRootError(f"{dataset} root is missing {what}: {path}")
    return path


def require_all(paths: Iterable[Path], what: str, dataset: str) -> None:
    """Raise ``DatasetRootError`` naming the first of ``paths`` that is missing, and the count."""
    missing = [p for p in paths if not p.exists()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DatasetRootError(f"{dataset} root is missing {what}: {missing[0]}{more}")


def read_lines(path: Path) -> list[str]:
    """Return the non-empty, stripped lines of a text file."""
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def imread_rgb(path: Path) -> np.ndarray:
    """Decode an image file with OpenCV as (H, W, 3) uint8 RGB."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot decode image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """Turn (H, W, 3) uint8 RGB into (3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)


def resize_ground(image: np.ndarray, size_hw: Sequence[int]) -> np.ndarray:
    """Resize a ground image to (H, W) = ``size_hw``."""
    h, w = int(size_hw[0]), int(size_hw[1])
    if image.shape[:2] == (h, w):
        return image
    interp = cv2.INTER_AREA if w < image.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(image, (w, h), interpolation=interp)


def load_ground(
    path: Path, k: np.ndarray, size_hw: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Decode a pinhole ground image, resize it to ``size_hw`` and rescale its intrinsics."""
    image = imread_rgb(path)
    h0, w0 = image.shape[:2]
    return resize_ground(image, size_hw), scale_intrinsics(k, (w0, h0), size_hw)


def heading_axes(heading_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """Return the forward and right unit vectors, in image (u, v) terms, of a heading.

    ``heading_rad`` is counter-clockwise from the image's +u axis as displayed (v down), so
    on a north-up image it is the ENU yaw.
    """
    c, s = math.cos(heading_rad), math.sin(heading_rad)
    return np.array([c, -s]), np.array([s, c])


def crop_matrix(
    centre_src: Sequence[float], heading_rad: float, scale: float, size_px: int
) -> np.ndarray:
    """Return the 2x3 map from crop pixels to source pixels (for ``WARP_INVERSE_MAP``)."""
    f, r = heading_axes(heading_rad)
    c = size_px // 2
    a = np.stack([f, r], axis=1) * scale  # columns: source step per crop +u, per crop +v
    t = np.asarray(centre_src, dtype=np.float64) - a @ np.array([c, c], dtype=np.float64)
    return np.concatenate([a, t[:, None]], axis=1)


def warp_crop(
    source: np.ndarray, centre_src: Sequence[float], heading_rad: float, scale: float,
    size_px: int,
) -> np.ndarray:
    """Cut a ``size_px`` square heading-aligned crop out of ``source`` (black outside it)."""
    m = crop_matrix(centre_src, heading_rad, scale, size_px)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    if scale > 1.5:
        # Shrinking by more than ~1.5x aliases with bilinear taps: blur the source first.
        sigma = 0.5 * math.sqrt(scale * scale - 1.0)
        source = cv2.GaussianBlur(source, (0, 0), sigma)
    return cv2.warpAffine(
        source, m, (size_px, size_px), flags=flags, borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )


def crop_targets(
    true_src: Sequence[float], true_heading_rad: float, prior_src: Sequence[float],
    prior_heading_rad: float, src_mpp: float,
) -> tuple[float, float, float]:
    """Return (shift_u_m, shift_v_m, yaw_deg) of the truth in the prior's crop frame."""
    f, r = heading_axes(prior_heading_rad)
    d = (np.asarray(true_src, dtype=np.float64) - np.asarray(prior_src, dtype=np.float64))
    yaw = math.degrees(true_heading_rad - prior_heading_rad)
    yaw = (yaw + 180.0) % 360.0 - 180.0
    return float(d @ f * src_mpp), float(d @ r * src_mpp), yaw


def prior_from_offsets(
    true_src: Sequence[float], true_heading_rad: float, forward_m: float, right_m: float,
    yaw_deg: float, src_mpp: float,
) -> tuple[np.ndarray, float]:
    """Place the prior so that the truth sits ``forward_m``/``right_m`` from it.

    The offsets are along the true heading's axes (the benchmarks' convention: shift the
    heading-aligned image, then rotate it about its centre by ``yaw_deg`` counter-clockwise),
    so the prior heading is the true heading minus ``yaw_deg``.
    """
    f, r = heading_axes(true_heading_rad)
    prior = np.asarray(true_src, dtype=np.float64) - (forward_m * f + right_m * r) / src_mpp
    return prior, true_heading_rad - math.radians(yaw_deg)


def perturbed_crop(
    source: np.ndarray, true_src: Sequence[float], true_heading_rad: float,
    offsets: tuple[float, float, float], src_mpp: float, mpp: float, size_px: int,
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Crop around a prior placed at ``offsets`` (forward m, right m, yaw deg) from the truth.

    Returns the heading-aligned crop at ``mpp`` and the truth's targets in its frame.
    """
    prior, prior_heading = prior_from_offsets(true_src, true_heading_rad, *offsets, src_mpp)
    crop = warp_crop(source, prior, prior_heading, mpp / src_mpp, size_px)
    return crop, crop_targets(true_src, true_heading_rad, prior, prior_heading, src_mpp)


@dataclass
class CropOptions:
    """Sizes and perturbation ranges shared by the loaders."""

    ground_size: tuple[int, int] = (256, 1024)
    satellite_size: int = 512
    satellite_mpp: float | None = None  # None: the dataset's native crop resolution
    shift_range_lon_m: float = 20.0
    shift_range_lat_m: float = 20.0
    rotation_range_deg: float = 10.0
    seed: int = 0


class CrossViewDataset(Dataset):
    """Base class: epoch-aware per-sample RNG and sample assembly."""

    name = "dataset"

    def __init__(self, root: str | os.PathLike, split: str, options: CropOptions) -> None:
        self.root = Path(root)
        self.split = split
        self.options = options
        self.epoch = 0
        if not self.root.is_dir():
            raise DatasetRootError(f"{self.name} root is not a folder: {self.root}")

    @property
    def is_train(self) -> bool:
        """Return whether this split draws random perturbations."""
        return self.split == "train"

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose perturbations training samples draw."""
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        """Return the generator of one sample: (seed, epoch, index) in training, else (seed)."""
        if self.is_train:
            return np.random.default_rng((self.options.seed, self.epoch, index))
        return np.random.default_rng((self.options.seed, 1_000_003, index))

    def random_offsets(self, index: int) -> tuple[float, float, float]:
        """Draw (forward_m, right_m, yaw_deg) uniformly in the configured ranges."""
        x, y, t = self.rng(index).uniform(-1.0, 1.0, size=3)
        o = self.options
        return float(x * o.shift_range_lon_m), float(y * o.shift_range_lat_m), float(
            t * o.rotation_range_deg
        )

    def pack(
        self, index: int, ground: np.ndarray, intrinsics: np.ndarray, satellite: np.ndarray,
        targets: tuple[float, float, float], mpp: float, camera_height_m: float,
        **extra: Any,
    ) -> dict[str, Any]:
        """Assemble one sample dict."""
        sample: dict[str, Any] = {
            "ground": to_tensor(ground),
            "intrinsics": torch.as_tensor(intrinsics, dtype=torch.float32),
            "satellite": to_tensor(satellite),
            "shift_u_m": torch.tensor(targets[0], dtype=torch.float32),
            "shift_v_m": torch.tensor(targets[1], dtype=torch.float32),
            "yaw_deg": torch.tensor(targets[2], dtype=torch.float32),
            "mpp": torch.tensor(mpp, dtype=torch.float32),
            "camera_height_m": torch.tensor(camera_height_m, dtype=torch.float32),
            "index": index,
        }
        sample.update(extra)
        return sample


def seed_worker(worker_id: int) -> None:
    """Seed Python's and NumPy's global RNGs from the worker's own torch seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
