# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Network benchmark for ``denseflow bench``: inference vs training-mode forward per preset.

For every preset, with random weights and inputs at the preset's sizes (batch 1), it times
the inference forward (eval mode, no gradients, only the work the pose needs) and the
training-mode forward (every iteration's heads and upsampling, autograd recording) in the
same process with the same threads, alternating the two so load on a shared machine hits
both alike, and reports the medians and their ratio.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from denseflow_ros.model.config import example_intrinsics, get_preset
from denseflow_ros.model.network import DenseFlow

# (preset, timed repetitions of each forward); the paper-size presets take seconds per frame.
PLAN: tuple[tuple[str, int], ...] = (
    ("lite", 15),
    ("kitti", 5),
    ("ford", 5),
    ("vigor", 5),
    ("oxford", 5),
)


def _inputs(name: str) -> tuple[DenseFlow, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    cfg = get_preset(name)
    torch.manual_seed(0)
    net = DenseFlow(cfg)
    gen = torch.Generator().manual_seed(1)
    h, w = cfg.ground_size
    s = cfg.satellite_size
    ground = torch.rand(1, 3, h, w, generator=gen)
    sat = torch.rand(1, 3, s, s, generator=gen)
    return net, (ground, sat, example_intrinsics(cfg))


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(name: str, reps: int) -> dict[str, float]:
    """Time one preset; return medians (s), the ratio, frames/s and parameter count (M)."""
    net, inputs = _inputs(name)

    def infer() -> object:
        net.eval()
        return net(*inputs)

    def train() -> object:
        net.train()
        return net(*inputs)

    infer()  # warm-up: allocator, one-off kernel selection
    train()
    inference, training = [], []
    for _ in range(reps):
        inference.append(_timed(infer))
        training.append(_timed(train))
    inf, tr = statistics.median(inference), statistics.median(training)
    return {
        "inference_s": inf,
        "training_s": tr,
        "ratio": inf / tr,
        "frames_per_s": 1.0 / inf,
        "params_m": sum(p.numel() for p in net.parameters()) / 1e6,
    }


def run(report: Callable[[str], None]) -> None:
    """Measure every preset and report one line each."""
    report(
        f"network forward, batch 1, {torch.get_num_threads()} torch threads, random weights; "
        "ratio = inference / training-mode forward (same process, alternated)"
    )
    for name, reps in PLAN:
        r = measure(name, reps)
        cfg = get_preset(name)
        report(
            f"  {name:<7} {r['params_m']:6.2f} M params, {cfg.iterations:2d} iterations: "
            f"inference {r['inference_s']:.3f} s/frame ({r['frames_per_s']:.1f} frames/s), "
            f"training-mode {r['training_s']:.3f} s, ratio {r['ratio']:.2f}"
        )
