# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Train DenseFlow on a benchmark: ``python -m training.train`` or ``torchrun -m training.train``.

::

    python -m training.train --dataset kitti --root ROOT --preset kitti --out RUN_DIR \
        [--config training/configs/kitti.yaml] [--max-steps N] [--resume]
    torchrun --nproc-per-node 4 -m training.train --config training/configs/kitti.yaml ...

The same script runs on one CPU, one GPU or many (DDP with a distributed sampler; NCCL on
GPUs, gloo on CPUs). Writes to RUN_DIR: ``train.log`` (plain text), ``config.yaml``,
``last.pt`` (full training state, every epoch and when stopped by ``--max-steps``; resumed
with ``--resume``, continuing the same trajectory), ``best.pt`` (the network with the best
validation score, package checkpoint format), ``model.pt`` (the final network) and, where
tensorboard is installed, TensorBoard scalars under ``tb/``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import logging
import math
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler, Sampler

from denseflow_ros.model import DenseFlow, ModelConfig, get_preset, load_model, save_checkpoint
from denseflow_ros.model.calibration import MIN_CALIBRATION_SAMPLES
from denseflow_ros.model.checkpoint import load_state, read_checkpoint
from training.config import TrainConfig, add_config_arguments, load_config, to_dict
from training.engine import (
    LOG,
    crop_options_for,
    forward,
    make_loader,
    open_dataset,
    predict,
    score,
    setup_distributed,
    to_device,
)
from training.losses import LossWeights, fine_loss, total_loss

STATE_FORMAT = "denseflow_ros/train-state-1"


class SkipSampler(Sampler[int]):
    """A sampler that drops the first ``skip`` indices of another (mid-epoch resume)."""

    def __init__(self, inner: DistributedSampler, skip: int) -> None:
        self.inner = inner
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.inner), self.skip, None)

    def __len__(self) -> int:
        return max(0, len(self.inner) - self.skip)


# Config fields that may change between a run and its resumption: where and how it runs.
RESUMABLE_CHANGES = frozenset({
    "resume", "max_steps", "num_workers", "device", "log_every", "out", "export",
    "val_batch_size", "save_every",
})
# Consecutive non-finite losses after which a run stops instead of skipping the batch.
MAX_NONFINITE_STEPS = 10


def write_state(path: Path, payload: dict[str, Any]) -> None:
    """Write a training state atomically and durably: a crash leaves the old or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def config_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Return the fields whose values differ between a saved and the current config."""
    keys = (set(saved) | set(current)) - RESUMABLE_CHANGES
    return sorted(k for k in keys if saved.get(k) != current.get(k))


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state["numpy"] = {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached": float(cached)}
    state["python"] = list(random.getstate()[1])
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))
    random.setstate((3, tuple(state["python"]), None))


def _setup_logging(out: Path, is_main: bool) -> None:
    LOG.setLevel(logging.INFO if is_main else logging.WARNING)
    LOG.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(out / "train.log")
        handler.setFormatter(fmt)
        LOG.addHandler(handler)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(fmt)
    LOG.addHandler(stream)
    LOG.propagate = False


def _tensorboard(out: Path, is_main: bool) -> Any:
    if not is_main:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        LOG.info("tensorboard is not installed: scalars go to train.log only")
        return None
    return SummaryWriter(str(out / "tb"))


def build_model(cfg: TrainConfig) -> DenseFlow:
    """Build the preset's network, optionally starting from ``init_checkpoint``."""
    model_cfg = get_preset(cfg.preset)
    if cfg.iterations is not None:
        model_cfg.iterations = int(cfg.iterations)
    if cfg.coarse_search_m is not None:
        model_cfg.coarse_search_m = float(cfg.coarse_search_m)
    if cfg.ground_stride is not None:
        model_cfg.ground_stride = int(cfg.ground_stride)
    if cfg.fine_channels is not None:
        model_cfg.fine_channels = int(cfg.fine_channels)
    # Input geometry is part of the network's config (the BEV grid's cell size follows it).
    if cfg.ground_size is not None:
        model_cfg.ground_size = tuple(int(x) for x in cfg.ground_size)
    if cfg.satellite_size is not None:
        model_cfg.satellite_size = int(cfg.satellite_size)
    if cfg.satellite_mpp is not None:
        model_cfg.satellite_mpp = float(cfg.satellite_mpp)
    torch.manual_seed(cfg.seed)
    net = DenseFlow(model_cfg)
    if cfg.fine_only and (not model_cfg.fine_channels or not cfg.init_checkpoint):
        raise ValueError("fine_only trains the fine stage of a trained network: it needs "
                         "fine_channels > 0 and an init_checkpoint")
    if cfg.init_checkpoint:
        _, state, dropped = load_state(cfg.init_checkpoint, cfg.preset)
        # A network trained without the fine stage starts one: only its weights may be new.
        missing, _ = net.load_state_dict(state, strict=False)
        new = [k for k in missing if k.startswith("fine.")]
        if len(new) != len(missing) or (new and not cfg.fine_only):
            net.load_state_dict(state)  # raises, naming the keys that do not fit
        LOG.info("initialised from %s (%d authors' keys unused, %d fine-stage weights new)",
                 cfg.init_checkpoint, len(dropped), len(new))
    if cfg.fine_only:
        for name, param in net.named_parameters():
            param.requires_grad_(name.startswith("fine."))
    return net


def loss_weights(cfg: TrainConfig) -> LossWeights:
    """Return the loss coefficients a config sets, field by field."""
    if cfg.confidence_loss not in ("paper", "bce"):
        raise ValueError(f"confidence_loss must be paper or bce, not {cfg.confidence_loss!r}")
    names = [f.name for f in dataclasses.fields(LossWeights)]
    return LossWeights(**{name: getattr(cfg, name) for name in names})


def _export(net: DenseFlow, path: Path, half: bool, **metadata: Any) -> None:
    """Write the network in the package format, optionally with float16 weights."""
    if not half:
        save_checkpoint(net, path, **metadata)
        return
    clone = DenseFlow(net.config)
    clone.load_state_dict(net.state_dict())
    clone.half()
    save_checkpoint(clone, path, **{**metadata, "dtype": "float16"})


def _open_data(cfg: TrainConfig, net: DenseFlow) -> tuple[Any, Any | None]:
    """Return the training split and the validation split (None when there is none)."""
    opts = crop_options_for(
        net.config, cfg.dataset, shift_range_lon_m=cfg.shift_range_lon_m,
        shift_range_lat_m=cfg.shift_range_lat_m, rotation_range_deg=cfg.rotation_range_deg,
        seed=cfg.seed,
    )
    train_set = open_dataset(cfg.dataset, cfg.root, cfg.train_split, opts, cfg.dataset_options)
    try:
        val_set = open_dataset(cfg.dataset, cfg.root, cfg.val_split, opts, cfg.dataset_options)
        if len(val_set) == 0:
            val_set = None
    except (FileNotFoundError, ValueError) as exc:
        LOG.warning("no validation split (%s): best.pt will not be written", exc)
        val_set = None
    return train_set, val_set


class _Run:
    """One run's network, optimiser, schedule and position, saved as and resumed from last.pt.

    The position is (``step``, ``epoch``, ``epoch_step``: batches done in ``epoch``) and
    ``best``, the best validation score so far.
    """

    def __init__(self, cfg: TrainConfig, info: Any, device: torch.device, net: DenseFlow,
                 total_steps: int) -> None:
        self.cfg, self.info, self.device, self.net = cfg, info, device, net
        trained = [p for p in net.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(trained, lr=cfg.lr,
                                     weight_decay=cfg.weight_decay, eps=cfg.adam_eps)
        self.sched = torch.optim.lr_scheduler.OneCycleLR(
            self.opt, max_lr=cfg.lr, total_steps=total_steps + 1, pct_start=cfg.pct_start,
            cycle_momentum=False, anneal_strategy="linear",
        )
        self.use_amp = cfg.amp and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.step, self.epoch, self.epoch_step, self.best = 0, 0, 0, math.inf
        self.state_path = Path(cfg.out) / "last.pt"
        self.model: torch.nn.Module = net
        self.weights = loss_weights(cfg)
        self.nonfinite = 0
        self.data_wait = 0.0

    def resume(self) -> None:
        """Load last.pt: weights, optimiser, schedule, scaler, position and RNG states."""
        if not self.state_path.is_file():
            raise FileNotFoundError(f"--resume: no training state at {self.state_path}")
        state = torch.load(self.state_path, map_location="cpu", weights_only=True)
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"{self.state_path} is not a training state file")
        changed = config_changes(state.get("config", {}), to_dict(self.cfg))
        if changed:
            raise ValueError(f"--resume: {self.state_path} was trained with other values of "
                             f"{', '.join(changed)}; resume with the same config")
        self.net.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch = state["step"], state["epoch"]
        self.epoch_step, self.best = state["epoch_step"], state["best"]
        _set_rng_state(state["rng"])
        LOG.info("resumed from %s at step %d (epoch %d, batch %d)", self.state_path, self.step,
                 self.epoch, self.epoch_step)

    def save_state(self) -> None:
        """Write last.pt (main process only)."""
        if not self.info.is_main:
            return
        payload = {
            "format": STATE_FORMAT, "model": self.net.state_dict(),
            "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict(), "step": self.step, "epoch": self.epoch,
            "epoch_step": self.epoch_step, "best": self.best, "rng": _rng_state(),
            "config": to_dict(self.cfg),
        }
        write_state(self.state_path, payload)

    def distribute(self) -> None:
        """Wrap the network for DDP when several processes train."""
        if self.info.world > 1:
            self.model = DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )

    def epoch_batches(self, train_set: Any) -> Iterator[Any]:
        """Return this epoch's batches, without those already done (mid-epoch resume)."""
        cfg, info = self.cfg, self.info
        train_set.set_epoch(self.epoch)
        sampler = DistributedSampler(train_set, num_replicas=info.world, rank=info.rank,
                                     shuffle=True, seed=cfg.seed, drop_last=True)
        sampler.set_epoch(self.epoch)
        skip = self.epoch_step * cfg.batch_size * cfg.grad_accum
        loader = make_loader(train_set, cfg.batch_size, cfg.num_workers,
                             seed=cfg.seed * 1000 + self.epoch,
                             sampler=SkipSampler(sampler, skip))
        return iter(loader)

    def train_step(self, batches: Iterator[Any], with_pose: bool
                   ) -> tuple[dict[str, float], float]:
        """Take one optimiser step over ``grad_accum`` batches; return its logs, grad norm.

        A step whose loss or gradient is not finite is skipped, never learned from.
        """
        cfg = self.cfg
        self.opt.zero_grad(set_to_none=True)
        logs: dict[str, float] = {}
        features_only = self.step < cfg.nce_warmup_steps
        for micro in range(cfg.grad_accum):
            waited = time.monotonic()
            batch = to_device(next(batches), self.device)
            self.data_wait += time.monotonic() - waited
            sync = micro == cfg.grad_accum - 1 or self.info.world == 1
            ctx = self.model.no_sync() if not sync else contextlib.nullcontext()
            with ctx:
                start = fine_window_start(batch, self.net.config, cfg.seed, self.step, micro) \
                    if cfg.fine_only else None
                with torch.autocast(self.device.type, dtype=torch.float16,
                                    enabled=self.use_amp):
                    out_ = forward(self.model, batch, features_only, start)
                if start is not None:
                    loss, logs = fine_loss(out_, batch["shift_u_m"], batch["shift_v_m"],
                                           batch["yaw_deg"])
                    logs["loss"] = logs["fine_loss"]
                else:
                    loss, logs = total_loss(out_, batch, self.weights,
                                            with_pose and not features_only,
                                            self.net.config)
                self.scaler.scale(loss / cfg.grad_accum).backward()
        self.scaler.unscale_(self.opt)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.clip_grad)
        if math.isfinite(logs["loss"]) and math.isfinite(float(grad_norm)):
            self.scaler.step(self.opt)
            self.nonfinite = 0
        else:
            self.nonfinite += 1
            LOG.warning("step %d: non-finite loss or gradient, batch skipped (%d in a "
                        "row)", self.step, self.nonfinite)
            if self.nonfinite >= MAX_NONFINITE_STEPS:
                raise RuntimeError(f"{self.nonfinite} non-finite steps in a row at step "
                                   f"{self.step}: lower the learning rate or check the data")
        self.scaler.update()
        self.sched.step()
        self.step += 1
        self.epoch_step += 1
        return logs, float(grad_norm)

    def log_step(self, logs: dict[str, float], grad_norm: float, started: float, step0: int,
                 writer: Any) -> None:
        """Log one step's losses, learning rate and speed; add them to TensorBoard."""
        elapsed = time.monotonic() - started
        lr = self.sched.get_last_lr()[0]
        extra = ""
        if "search_loss" in logs:
            extra = f" search {_fmt(logs, 'search_loss')} acc {_fmt(logs, 'search_acc')}"
        if "fine_loss" in logs:
            extra = f" fine error {_fmt(logs, 'fine_err_m')} m"
        LOG.info("step %d epoch %d loss %.4f flow %s pose %s epe %s px nce %s acc %s%s "
                 "lr %.3g grad %.3f; %.2f s/step, waiting for data %.0f %%", self.step,
                 self.epoch, logs["loss"], _fmt(logs, "flow_loss"), _fmt(logs, "pose_loss"),
                 _fmt(logs, "epe"), _fmt(logs, "nce_loss"), _fmt(logs, "nce_acc"), extra, lr,
                 grad_norm, elapsed / (self.step - step0),
                 100.0 * self.data_wait / max(elapsed, 1e-9))
        if writer is not None:
            for key, value in logs.items():
                writer.add_scalar(f"train/{key}", value, self.step)
            writer.add_scalar("train/lr", lr, self.step)

    def validate(self, val_set: Any, writer: Any) -> dict:
        """Score the network on the validation split; export best.pt when it improved."""
        cfg = self.cfg
        pred = predict(self.net, val_set, self.device, cfg.val_batch_size or cfg.batch_size,
                       cfg.num_workers, self.info, limit=cfg.val_limit, amp=self.use_amp)
        results = score(pred)
        value = float(results["estimate"][cfg.select_metric])
        LOG.info("validation after epoch %d: %s %.4f (prior %.4f), median %.3f m",
                 self.epoch, cfg.select_metric, value,
                 float(results["prior"][cfg.select_metric]),
                 results["estimate"]["distance_median_m"])
        if writer is not None:
            writer.add_scalar(f"val/{cfg.select_metric}", value, self.step)
        if value < self.best:
            self.best = value
            if self.info.is_main:
                _export(self.net, Path(cfg.out) / "best.pt", cfg.save_half, epoch=self.epoch,
                        step=self.step, validation=results, dataset=cfg.dataset)
        return results


def fine_window_start(batch: dict[str, Any], config: ModelConfig, seed: int, step: int,
                      micro: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return the pose a fine-stage training window is placed around: truth plus noise.

    The noise is uniform over three quarters of the window in each of u, v and yaw (where
    the decoder leaves the frames it localized), drawn from (seed, step, micro-batch) so a
    resumed run draws the same windows.
    """
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step * 97 + micro)
    b = batch["shift_u_m"].shape[0]
    spread = torch.tensor([config.fine_radius_m, config.fine_radius_m, config.fine_yaw_deg])
    noise = (torch.rand(b, 3, generator=gen) * 2.0 - 1.0) * 0.75 * spread
    noise = noise.to(batch["shift_u_m"].device)
    return (batch["shift_u_m"].float() + noise[:, 0], batch["shift_v_m"].float() + noise[:, 1],
            batch["yaw_deg"].float() + noise[:, 2])


def _check_replicas(net: DenseFlow, info: Any) -> None:
    """Raise when DDP replicas hold different weights (a silent divergence ruins a run)."""
    digest = float(sum(p.detach().double().sum() for p in net.parameters()))
    digests: list[float] = [0.0] * info.world
    dist.all_gather_object(digests, digest)
    if len(set(digests)) != 1:
        raise RuntimeError(f"replicas diverged: parameter sums {digests}")
    LOG.info("all %d ranks hold the same weights (parameter sum %.9g)", info.world, digest)


def _export_chosen(cfg: TrainConfig, val_set: Any | None, device: torch.device) -> None:
    """Write ``cfg.export``: best.pt (else model.pt) in float16, calibrated on validation."""
    out = Path(cfg.out)
    chosen = out / "best.pt" if (out / "best.pt").is_file() else out / "model.pt"
    final = load_model(chosen)
    meta = dict(read_checkpoint(chosen).get("metadata", {}))
    n_val = 0 if val_set is None else min(len(val_set), cfg.val_limit or len(val_set))
    if 0 < n_val < MIN_CALIBRATION_SAMPLES:
        LOG.warning("covariance calibration skipped: %d validation samples, it needs "
                    "%d; the export is uncalibrated", n_val, MIN_CALIBRATION_SAMPLES)
    elif val_set is not None:
        from training.calibrate import fit_on

        calibration, before, after = fit_on(final, val_set, device,
                                            cfg.val_batch_size or cfg.batch_size,
                                            cfg.num_workers, cfg.val_limit)
        meta["covariance_calibration"] = calibration
        LOG.info("covariance calibration on %s: %s; position NEES mean %.2f -> %.2f",
                 cfg.val_split, calibration, before["position_nees_mean"],
                 after["position_nees_mean"])
    Path(cfg.export).parent.mkdir(parents=True, exist_ok=True)
    _export(final, Path(cfg.export), True, **{**meta, "source": chosen.name})
    LOG.info("exported %s as float16 to %s", chosen.name, cfg.export)


def _prepare(cfg: TrainConfig, info: Any, out: Path) -> None:
    """Log to RUN_DIR, write its config.yaml and the synthetic export the run reads."""
    _setup_logging(out, info.is_main)
    if not cfg.root:
        raise ValueError("no dataset root: pass --root or set root in the config")
    if info.is_main:
        with open(out / "config.yaml", "w", encoding="utf-8") as f:
            yaml.safe_dump(to_dict(cfg), f, sort_keys=False)
    generate = cfg.dataset_options.get("generate") if cfg.dataset == "synthetic" else None
    if generate:
        # One process writes the synthetic export; the others wait for it.
        if info.is_main:
            from training.synthetic import ensure_export

            ensure_export(cfg.root, generate, progress=sys.stderr.isatty())
        if info.world > 1:
            dist.barrier()


def _schedule(cfg: TrainConfig, samples: int, world: int) -> tuple[int, int, int]:
    """Return (steps per epoch, total steps, epochs) for ``samples`` training samples."""
    per_step = cfg.batch_size * cfg.grad_accum * world
    steps_per_epoch = samples // per_step
    if steps_per_epoch < 1:
        raise ValueError(
            f"{samples} training samples do not fill one step of {per_step} "
            "(batch size x accumulation x processes)"
        )
    total_steps = cfg.total_steps or cfg.epochs * steps_per_epoch
    return steps_per_epoch, total_steps, math.ceil(total_steps / steps_per_epoch)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) one training run; return a summary with the per-step logs."""
    info, device = setup_distributed(cfg.device)
    out = Path(cfg.out)
    _prepare(cfg, info, out)
    net = build_model(cfg).to(device)
    net.flow_trains_encoders = cfg.flow_trains_encoders
    train_set, val_set = _open_data(cfg, net)
    steps_per_epoch, total_steps, epochs = _schedule(cfg, len(train_set), info.world)
    LOG.info("%s %s: %d samples, %d validation; %d steps/epoch, %d steps, %d epochs, "
             "%d process(es) on %s", cfg.dataset, cfg.train_split, len(train_set),
             len(val_set) if val_set else 0, steps_per_epoch, total_steps, epochs, info.world,
             device)
    run = _Run(cfg, info, device, net, total_steps)
    if cfg.resume:
        run.resume()
    run.distribute()
    writer = _tensorboard(out, info.is_main)
    stop_at = total_steps if cfg.max_steps is None else min(total_steps, cfg.max_steps)
    val_results: dict | None = None
    history: list[dict[str, float]] = []
    started, step0 = time.monotonic(), run.step
    run.model.train()
    while run.step < stop_at and run.epoch < epochs:
        batches = run.epoch_batches(train_set)
        with_pose = run.epoch >= cfg.pose_loss_start_epoch
        progress = None
        if info.is_main:
            from tqdm import tqdm

            progress = tqdm(total=steps_per_epoch, initial=run.epoch_step,
                            desc=f"epoch {run.epoch}", unit="step", leave=False,
                            disable=not sys.stderr.isatty())
        while run.epoch_step < steps_per_epoch and run.step < stop_at:
            logs, grad_norm = run.train_step(batches, with_pose)
            if (cfg.save_every and run.step % cfg.save_every == 0
                    and run.epoch_step < steps_per_epoch):
                run.save_state()
            history.append(dict(logs))
            if progress is not None:
                progress.update(1)
                progress.set_postfix(loss=f"{logs['loss']:.3f}",
                                     epe=f"{logs.get('epe', math.nan):.2f}")
            if run.step % cfg.log_every == 0 or run.step == stop_at:
                run.log_step(logs, grad_norm, started, step0, writer)
        if progress is not None:
            progress.close()
        if run.epoch_step < steps_per_epoch and run.step < total_steps:
            run.save_state()  # stopped by --max-steps inside an epoch
            break
        # The epoch is complete: validate, keep the best, checkpoint.
        run.epoch += 1
        run.epoch_step = 0
        if val_set is not None:
            val_results = run.validate(val_set, writer)
        run.save_state()
    finished = run.step >= total_steps
    if info.world > 1:
        _check_replicas(net, info)
    if finished and info.is_main:
        _export(net, out / "model.pt", cfg.save_half, epoch=run.epoch, step=run.step,
                dataset=cfg.dataset)
        if cfg.export:
            _export_chosen(cfg, val_set, device)
    LOG.info("%s at step %d of %d after %.1f s", "finished" if finished else "stopped",
             run.step, total_steps, time.monotonic() - started)
    if writer is not None:
        writer.close()
    if info.world > 1:
        dist.barrier()
    return {"step": run.step, "epoch": run.epoch, "finished": finished, "best": run.best,
            "validation": val_results, "history": history}


def _fmt(logs: dict[str, float], key: str) -> str:
    return f"{logs[key]:.4f}" if key in logs else "-"


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and train."""
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args)
        train(cfg)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
