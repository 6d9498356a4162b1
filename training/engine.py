# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Pieces shared by training and evaluation: devices, distributed setup, batches, inference."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Subset

from denseflow_ros import metrics
from denseflow_ros.model import DenseFlow, ModelConfig
from training.datasets import CropOptions, CrossViewDataset, build_dataset, seed_worker

LOG = logging.getLogger("training")


@dataclass
class DistInfo:
    """The rank, world size and local rank of one process in a run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Return whether this is rank 0."""
        return self.rank == 0


def setup_distributed(device_name: str) -> tuple[DistInfo, torch.device]:
    """Join the torchrun process group if there is one; pick this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(int(os.environ.get("RANK", "0")), world,
                    int(os.environ.get("LOCAL_RANK", "0")))
    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    if device_name == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device(device_name)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return info, device


def crop_options_for(config: ModelConfig, dataset: str, **overrides: Any) -> CropOptions:
    """Return crop options matching a network's input sizes (overrides win when not None)."""
    opts = CropOptions(
        ground_size=tuple(config.ground_size),
        satellite_size=config.satellite_size,
        # VIGOR's resolution varies by city: keep each city's native one.
        satellite_mpp=None if dataset == "vigor" else config.satellite_mpp,
    )
    for key, value in overrides.items():
        if value is not None:
            setattr(opts, key, tuple(value) if key == "ground_size" else value)
    return opts


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move a batch's tensors to ``device``."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()}


def forward(model: torch.nn.Module, batch: dict[str, Any], features_only: bool = False,
            fine_start: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> Any:
    """Run the network on a batch with its per-sample geometry."""
    return model(
        batch["ground"], batch["satellite"], batch["intrinsics"],
        satellite_mpp=batch["mpp"], camera_height_m=batch["camera_height_m"],
        camera_to_body=batch.get("camera_to_body"), features_only=features_only,
        fine_start=fine_start,
    )


def make_loader(
    dataset: CrossViewDataset, batch_size: int, num_workers: int, seed: int,
    sampler: Iterable[int] | None = None,
) -> DataLoader:
    """Return a DataLoader whose workers seed their own RNGs (at most one per core)."""
    num_workers = min(num_workers, os.cpu_count() or 1)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, shuffle=False,
        num_workers=num_workers, worker_init_fn=seed_worker, generator=generator,
        pin_memory=torch.cuda.is_available(), drop_last=False,
    )


@torch.no_grad()
def predict(
    model: DenseFlow | torch.nn.Module, dataset: CrossViewDataset, device: torch.device,
    batch_size: int, num_workers: int, info: DistInfo, limit: int | None = None,
    amp: bool = False, progress: bool = False,
) -> dict[str, np.ndarray]:
    """Run the network over ``dataset`` (sharded over ranks) and gather truth and estimates.

    Returns arrays ``index``, ``true_u``, ``true_v``, ``true_yaw``, ``est_u``, ``est_v``,
    ``est_yaw`` and ``covariance`` (N, 3, 3 over u [m], v [m], yaw [rad]) on every rank, in
    dataset order.
    """
    n = len(dataset) if limit is None else min(limit, len(dataset))
    shard = Subset(dataset, list(range(info.rank, n, info.world)))
    loader = make_loader(shard, batch_size, num_workers, seed=0)  # type: ignore[arg-type]
    was_training = model.training
    model.eval()
    rows: list[np.ndarray] = []
    batches = loader
    if progress and info.is_main and sys.stderr.isatty():
        from tqdm import tqdm

        batches = tqdm(loader, desc="evaluate", unit="batch", leave=False)
    for batch in batches:
        batch = to_device(batch, device)
        with torch.autocast(device.type, dtype=torch.float16,
                            enabled=amp and device.type == "cuda"):
            out = forward(model, batch)
        rows.append(torch.cat([torch.stack([
            torch.as_tensor(batch["index"], dtype=torch.float64, device=device),
            batch["shift_u_m"].double(), batch["shift_v_m"].double(), batch["yaw_deg"].double(),
            out.shift_u_m.double(), out.shift_v_m.double(), out.yaw_deg.double(),
        ], dim=1), out.covariance.double().reshape(-1, 9)], dim=1).cpu().numpy())
    model.train(was_training)
    local = np.concatenate(rows) if rows else np.zeros((0, 16))
    if info.world > 1:
        gathered: list[np.ndarray] = [None] * info.world  # type: ignore[list-item]
        dist.all_gather_object(gathered, local)
        local = np.concatenate(gathered)
    local = local[np.argsort(local[:, 0], kind="stable")]
    keys = ("index", "true_u", "true_v", "true_yaw", "est_u", "est_v", "est_yaw")
    pred = {k: local[:, i] for i, k in enumerate(keys)}
    pred["covariance"] = local[:, 7:].reshape(-1, 3, 3)
    return pred


def score(pred: dict[str, np.ndarray], baseline: dict[str, np.ndarray] | None = None) -> dict:
    """Return the results document of predictions (prior = crop centre, estimate = network).

    ``baseline`` holds another method's predictions of the same samples (``predict`` output).
    """
    truth = (pred["true_u"], pred["true_v"], pred["true_yaw"])
    zeros = np.zeros_like(pred["true_u"])
    prior = metrics.crop_pose_errors(zeros, zeros, zeros, *truth)
    est = metrics.crop_pose_errors(pred["est_u"], pred["est_v"], pred["est_yaw"], *truth)
    base = None
    if baseline is not None:
        if not np.array_equal(baseline["index"], pred["index"]):
            raise ValueError("the baseline was run on other samples than the network")
        base = metrics.crop_pose_errors(baseline["est_u"], baseline["est_v"],
                                        baseline["est_yaw"], *truth)
    doc = metrics.evaluate_errors(prior, est, base)
    if "covariance" in pred:
        cov = pred["covariance"]
        err = np.stack([pred["est_u"] - pred["true_u"], pred["est_v"] - pred["true_v"]], 1)
        dyaw = np.radians(metrics.wrap_deg(pred["est_yaw"] - pred["true_yaw"]))
        try:
            doc["consistency"] = metrics.consistency(err, cov[:, :2, :2], dyaw, cov[:, 2, 2])
        except (ValueError, np.linalg.LinAlgError):
            pass  # a singular covariance (an untrained network): nothing to check
    return doc


def open_dataset(
    name: str, root: str, split: str, options: CropOptions, dataset_options: dict[str, Any],
    split_file: str | None = None,
) -> CrossViewDataset:
    """Build a dataset split, passing ``split_file`` only when given."""
    kwargs = dict(dataset_options)
    if split_file is not None:
        kwargs["split_file"] = split_file
    return build_dataset(name, root, split, options, **kwargs)
