# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Figures of results: trajectories, errors over time, errors in their covariance's frame."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from denseflow_ros.metrics import CHI2_2DOF_95


def whitened_errors(position_error: np.ndarray, position_cov: np.ndarray) -> np.ndarray:
    """Return (N, 2) errors ``L^-1 e`` with ``S = L L^T``: unit-variance for a true ``S``."""
    e = np.asarray(position_error, dtype=np.float64).reshape(-1, 2)
    chol = np.linalg.cholesky(np.asarray(position_cov, dtype=np.float64).reshape(-1, 2, 2))
    return np.linalg.solve(chol, e[..., None])[..., 0]


def plot_consistency(position_error: np.ndarray, position_cov: np.ndarray, path: Path,
                     title: str) -> None:
    """Plot whitened errors with the 1-sigma, 2-sigma and 95 % circles; write a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = whitened_errors(position_error, position_cov)
    nees = (z**2).sum(1)
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    t = np.linspace(0.0, 2 * np.pi, 200)
    for r, style, label in ((1.0, ":", "1 sigma"), (2.0, "--", "2 sigma"),
                            (np.sqrt(CHI2_2DOF_95), "-", "95 %")):
        ax.plot(r * np.cos(t), r * np.sin(t), style, color="black", lw=1,
                label=f"{label}: {100 * np.mean(nees <= r * r):.0f} % inside")
    ax.scatter(z[:, 0], z[:, 1], s=10, alpha=0.7, color="tab:blue", zorder=3)
    lim = max(4.0, float(np.percentile(np.abs(z), 98)) * 1.1)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("error / sigma (first axis)")
    ax.set_ylabel("error / sigma (second axis)")
    ax.set_title(f"{title}\nposition NEES mean {nees.mean():.2f} (consistent: 2)")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


@dataclass(frozen=True)
class MapBackground:
    """An RGB map image, its extent and the part to show, (left, right, bottom, top) metres."""

    image: np.ndarray
    extent: tuple[float, float, float, float]
    view: tuple[float, float, float, float]


def plot_trajectory(track: np.ndarray, prior: np.ndarray, estimate: np.ndarray, path: Path,
                    title: str, prior_label: str = "prior (fix)",
                    estimate_label: str = "estimate",
                    background: MapBackground | None = None) -> None:
    """Draw ground truth, priors and estimates (ENU metres), over a map when given; PNG.

    ``track`` is (M, 2) east, north; ``prior`` and ``estimate`` (N, >=2), matched by row: a
    thin yellow line joins each prior to its estimate.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import patheffects

    fig, ax = plt.subplots(figsize=(9, 9.6))
    if background is not None:
        ax.imshow(background.image, extent=background.extent, interpolation="bilinear")
    outline = [patheffects.Stroke(linewidth=4.0, foreground="black", alpha=0.7),
               patheffects.Normal()]
    ax.plot(track[:, 0], track[:, 1], "-", color="white", lw=2.2, label="ground truth",
            path_effects=outline)
    for k in range(estimate.shape[0]):
        ax.plot([prior[k, 0], estimate[k, 0]], [prior[k, 1], estimate[k, 1]], "-",
                color="yellow", lw=0.6, alpha=0.6)
    ax.plot(prior[:, 0], prior[:, 1], "o", color="tab:orange", ms=4, mec="black", mew=0.4,
            label=prior_label)
    ax.plot(estimate[:, 0], estimate[:, 1], "o", color="deepskyblue", ms=4, mec="black",
            mew=0.4, label=estimate_label)
    ax.plot(track[0, 0], track[0, 1], "s", color="white", mec="black", ms=8, label="start")
    if background is not None:
        ax.set_xlim(*background.view[:2])
        ax.set_ylim(*background.view[2:])
    else:
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(True, alpha=0.3)
    ax.set_xlabel("east (m)")
    ax.set_ylabel("north (m)")
    ax.set_title(title)
    # Below the map: inside, it would hide part of the route.
    fig.legend(loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0.0, 0.06, 1.0, 1.0))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_errors(times_s: np.ndarray, missing_s: np.ndarray, prior_errors: tuple,
                estimate_errors: tuple, path: Path, title: str) -> None:
    """Draw position and yaw error of prior and estimate over time; mark frames without pose.

    The errors are (lateral m, longitudinal m, yaw deg) arrays, one entry per ``times_s``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pl, pg, py = prior_errors
    el, eg, ey = estimate_errors
    fig, (ax_pos, ax_yaw) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    ax_pos.plot(times_s, np.hypot(pl, pg), ".-", color="tab:orange", lw=1, ms=4,
                label="GNSS prior")
    ax_pos.plot(times_s, np.hypot(el, eg), ".-", color="tab:blue", lw=1, ms=4,
                label="DenseFlow estimate")
    ax_yaw.plot(times_s, py, ".-", color="tab:orange", lw=1, ms=4, label="IMU prior")
    ax_yaw.plot(times_s, ey, ".-", color="tab:blue", lw=1, ms=4, label="DenseFlow estimate")
    if missing_s.size:
        for ax in (ax_pos, ax_yaw):
            ax.plot(missing_s, np.zeros_like(missing_s), "x", color="tab:red", ms=6,
                    label="no pose (rejected or dropped)" if ax is ax_pos else None)
    ax_pos.set_ylabel("position error (m)")
    ax_yaw.set_ylabel("yaw error (deg)")
    ax_yaw.set_xlabel("drive time (s)")
    for ax in (ax_pos, ax_yaw):
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", framealpha=0.85)
    ax_pos.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
