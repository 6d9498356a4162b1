# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Figures of results: position errors in their covariance's own frame."""

from __future__ import annotations

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
