# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Benchmark loaders in their published layouts, behind one ``build_dataset`` call."""

from __future__ import annotations

import os
from typing import Any

from training.datasets.common import CropOptions, CrossViewDataset, DatasetRootError, seed_worker

DATASETS = ("kitti", "synthetic", "sim", "ford", "vigor", "oxford")


def build_dataset(
    name: str, root: str | os.PathLike, split: str, options: CropOptions, **kwargs: Any
) -> CrossViewDataset:
    """Build the named dataset's ``split`` under ``root``.

    ``synthetic`` is the simulator's KITTI-layout export read by the KITTI loader with the
    constants of its ``sim_info.json`` (written first if ``generate`` describes it, see
    :mod:`training.synthetic`); ``sim`` renders samples on the fly from seeded towns
    (:mod:`training.datasets.simulated`); other keyword arguments go to the loader (e.g.
    ``split_file``, ``log`` for Ford, ``area`` for VIGOR).
    """
    if name == "kitti":
        from training.datasets.kitti import KittiDataset

        return KittiDataset(root, split, options, **kwargs)
    if name == "synthetic":
        from training.datasets.kitti import KittiDataset
        from training.synthetic import ensure_export, loader_options

        generate = kwargs.pop("generate", None)
        if generate:
            ensure_export(root, generate)
        return KittiDataset(root, split, options, **{**loader_options(root), **kwargs})
    if name == "sim":
        from training.datasets.simulated import SimulatedTowns

        return SimulatedTowns(root, split, options, **kwargs)
    if name == "ford":
        from training.datasets.ford import FordDataset

        return FordDataset(root, split, options, **kwargs)
    if name == "vigor":
        from training.datasets.vigor import VigorDataset

        return VigorDataset(root, split, options, **kwargs)
    if name == "oxford":
        from training.datasets.oxford import OxfordDataset

        if kwargs.pop("split_file", None) is not None:
            raise ValueError("Oxford RobotCar reads its fixed split files; use --split instead")
        return OxfordDataset(root, split, options, **kwargs)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


__all__ = [
    "DATASETS",
    "CropOptions",
    "CrossViewDataset",
    "DatasetRootError",
    "build_dataset",
    "seed_worker",
]
