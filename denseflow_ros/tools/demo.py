# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``denseflow demo``: the localizer end to end on the synthetic demo drive.

1. The scenario of ``config/demo.yaml`` (section ``denseflow_demo``): a town and a drive
   through it, held out from the demo network's training, exported as a tile cache and a
   rosbag2. Cached under ``--work-dir`` (default ``.cache/demo``); later runs reuse it.
2. ``localizer_node`` as its own process with ``--ros-args --params-file config/demo.yaml``
   plus the scenario's model, tile cache and datum, on loopback DDS
   (:func:`denseflow_ros.dds.loopback_env`, the environment's ``ROS_DOMAIN_ID`` or 43).
3. ``denseflow replay`` publishes the drive; this process records ``/pose`` and
   ``/diagnostics`` (:func:`denseflow_ros.tools.record.record`) and scores the poses with
   :func:`denseflow_ros.tools.evaluate.evaluate`, prior beside estimate.

Writes to ``--output`` (default ``demo-output``): ``summary.json`` (the results document of
:mod:`denseflow_ros.metrics` plus ``accepted_fraction``: poses published per frame replayed,
and ``latency_ms_median``: per frame, from its publication by the player to its pose's
arrival, over DDS on this host), ``trajectory.png``, ``errors.png``, ``frames.csv``,
``run.json`` (scenario, model, node counters, latencies, timings), the recorded ``poses`` bag
and the node's and player's logs.

The scenario lives in :mod:`~denseflow_ros.tools.demo_scenario`, the processes and the
listener in :mod:`~denseflow_ros.tools.demo_run`, scores, table and figures in
:mod:`~denseflow_ros.tools.demo_report`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from denseflow_ros.tools.demo_scenario import (
    DemoError,
    ScenarioSettings,
    progress_enabled,
    read_scenario,
)

DEFAULT_DOMAIN = 43


def _default_config() -> Path:
    here = Path(__file__).resolve().parents[2] / "config" / "demo.yaml"
    if here.is_file():
        return here
    return Path(sys.prefix) / "share" / "denseflow_ros" / "config" / "demo.yaml"


def _default_model() -> Path:
    from importlib import resources

    return Path(str(resources.files("denseflow_ros").joinpath("resources", "demo_lite.pt")))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``denseflow demo`` options."""
    parser.add_argument("--frames", type=int, default=None,
                        help="replay only the drive's first N frames (a short run)")
    parser.add_argument("--output", type=Path, default=Path("demo-output"),
                        help="folder for summary.json, the plots and logs (default %(default)s)")
    parser.add_argument("--work-dir", type=Path, default=Path(".cache/demo"),
                        help="scenario cache (default %(default)s)")
    parser.add_argument("--model", type=Path, default=None,
                        help="DenseFlow checkpoint (default: the bundled demo_lite.pt)")
    parser.add_argument("--config", type=Path, default=None,
                        help="node parameters and scenario (default: config/demo.yaml)")
    parser.add_argument("--world-size-m", type=float, default=None,
                        help="side of the town (default: the config's; smaller is faster)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the classical NCC column (about 0.25 s per frame)")


@dataclass(frozen=True)
class DemoOptions:
    """A demo run; None picks the default (all frames, config/demo.yaml, demo_lite.pt)."""

    output: Path = Path("demo-output")
    work_dir: Path = Path(".cache/demo")
    frames: int | None = None
    model: Path | None = None
    config: Path | None = None
    world_size_m: float | None = None
    baseline: bool = True

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DemoOptions:
        """Return the options of a ``denseflow demo`` command line."""
        return cls(args.output, args.work_dir, args.frames, args.model, args.config,
                   args.world_size_m, not args.no_baseline)


def _ros_domain() -> int:
    """Return the environment's ROS_DOMAIN_ID, or the demo's own, checked."""
    text = os.environ.get("ROS_DOMAIN_ID", "").strip() or str(DEFAULT_DOMAIN)
    try:
        domain = int(text)
        if not 0 <= domain <= 101:
            raise ValueError
    except ValueError:
        raise DemoError(f"ROS_DOMAIN_ID must be an integer in [0, 101], got {text!r}"
                        ) from None
    return domain


def _inputs(options: DemoOptions) -> tuple[Path, Path, ScenarioSettings, int]:
    """Return (config, model, scenario settings, frames to replay), all checked."""
    config = (options.config or _default_config()).resolve()
    if not config.is_file():
        raise DemoError(f"demo config {config} not found; pass --config")
    model = (options.model or _default_model()).resolve()
    if not model.is_file():
        raise DemoError(f"no demo checkpoint at {model}: run `make demo-weights` or pass "
                        "--model PATH")
    settings = read_scenario(config)
    if options.world_size_m is not None:
        settings = dataclasses.replace(settings, world_size_m=options.world_size_m)
    total = settings.frames
    frames = total if options.frames is None else options.frames
    if not 2 <= frames <= total:
        raise DemoError(f"--frames must be between 2 and the drive's {total}, got {frames}")
    if not settings.replay_rate > 0:
        raise DemoError(f"{config}: replay_rate must be > 0")
    return config, model, settings, frames


def run(options: DemoOptions) -> dict:
    """Run the whole demo; return the summary document."""
    import numpy as np

    from denseflow_ros import metrics
    from denseflow_ros.tools import demo_report
    from denseflow_ros.tools.demo_run import run_drive
    from denseflow_ros.tools.demo_scenario import prepare_scenario
    from denseflow_ros.tools.evaluate import write_csv

    t_start = time.monotonic()
    config, model, settings, frames = _inputs(options)
    domain = _ros_domain()
    out = options.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        files = prepare_scenario(settings, frames, options.work_dir.resolve())
    except OSError as exc:
        raise DemoError(f"cannot write the scenario under {options.work_dir}: {exc}") from None
    t_ready = time.monotonic()
    drive = run_drive(config, model, files, settings.replay_rate, out, domain)
    try:
        result = demo_report.score(files, out / "poses")
    except ValueError:
        raise DemoError(f"the node published no usable pose for the {frames} frames "
                        f"(see {out / 'node.log'})") from None
    doc = result.doc
    if options.baseline:
        from denseflow_ros.localizer import InputGeometry
        from denseflow_ros.model import load_model
        from denseflow_ros.tools.demo_baseline import localize_drive

        geometry = InputGeometry.from_preset(load_model(model).config)
        doc["baseline"] = localize_drive(files, geometry, progress=progress_enabled())
    metrics.validate_results(doc)
    accepted = doc["samples"] / frames
    latencies = drive.latencies_ms
    latency = float(np.median(latencies)) if latencies else float("nan")
    summary = {**doc, "accepted_fraction": accepted, "latency_ms_median": latency}
    demo_report.write_json(out / "summary.json", summary)
    write_csv(result, out / "frames.csv")
    demo_report.write_plots(files, result, out)
    timings = {**drive.timings, "setup_s": t_ready - t_start,
               "total_s": time.monotonic() - t_start}
    demo_report.write_json(out / "run.json", {
        "scenario": {**dataclasses.asdict(settings), "frames_replayed": frames},
        "model": str(model), "config": str(config), "ros_domain_id": domain,
        "node": drive.counters,
        "latency_ms": {"frames": len(latencies), "median": latency,
                       "p90": float(np.percentile(latencies, 90)) if latencies else None},
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    })
    print(demo_report.report(doc, accepted, latency))
    print(demo_report.outcomes(drive.counters))
    print(f"\nwrote {out / 'summary.json'}, trajectory.png, errors.png and consistency.png "
          f"({timings['total_s']:.0f} s, of which {timings['setup_s']:.0f} s scenario set-up)")
    return summary


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(args: argparse.Namespace) -> int:
    """Run the demo; print the results or one sentence saying why it could not."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        run(DemoOptions.from_args(args))
    except (DemoError, OSError) as exc:
        print(f"denseflow demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("denseflow demo: interrupted; the processes it started have stopped",
              file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
