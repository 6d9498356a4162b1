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

from denseflow_ros.model import DenseFlow, get_preset, load_model, save_checkpoint
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
from training.losses import LossWeights, total_loss

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
    # Input geometry is part of the network's config (the BEV grid's cell size follows it).
    if cfg.ground_size is not None:
        model_cfg.ground_size = tuple(int(x) for x in cfg.ground_size)
    if cfg.satellite_size is not None:
        model_cfg.satellite_size = int(cfg.satellite_size)
    if cfg.satellite_mpp is not None:
        model_cfg.satellite_mpp = float(cfg.satellite_mpp)
    torch.manual_seed(cfg.seed)
    net = DenseFlow(model_cfg)
    if cfg.init_checkpoint:
        _, state, dropped = load_state(cfg.init_checkpoint, cfg.preset)
        net.load_state_dict(state)
        LOG.info("initialised from %s (%d authors' keys unused)", cfg.init_checkpoint,
                 len(dropped))
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


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) one training run; return a summary with the per-step logs."""
    info, device = setup_distributed(cfg.device)
    out = Path(cfg.out)
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
    net = build_model(cfg).to(device)
    net.flow_trains_encoders = cfg.flow_trains_encoders
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
    per_step = cfg.batch_size * cfg.grad_accum * info.world
    steps_per_epoch = len(train_set) // per_step
    if steps_per_epoch < 1:
        raise ValueError(
            f"{len(train_set)} training samples do not fill one step of {per_step} "
            "(batch size x accumulation x processes)"
        )
    total_steps = cfg.total_steps or cfg.epochs * steps_per_epoch
    epochs = math.ceil(total_steps / steps_per_epoch)
    LOG.info("%s %s: %d samples, %d validation; %d steps/epoch, %d steps, %d epochs, "
             "%d process(es) on %s", cfg.dataset, cfg.train_split, len(train_set),
             len(val_set) if val_set else 0, steps_per_epoch, total_steps, epochs, info.world,
             device)

    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            eps=cfg.adam_eps)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=total_steps + 1, pct_start=cfg.pct_start,
        cycle_momentum=False, anneal_strategy="linear",
    )
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    step, epoch, epoch_step, best = 0, 0, 0, math.inf
    state_path = out / "last.pt"
    if cfg.resume:
        if not state_path.is_file():
            raise FileNotFoundError(f"--resume: no training state at {state_path}")
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"{state_path} is not a training state file")
        changed = config_changes(state.get("config", {}), to_dict(cfg))
        if changed:
            raise ValueError(f"--resume: {state_path} was trained with other values of "
                             f"{', '.join(changed)}; resume with the same config")
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        step, epoch, epoch_step = state["step"], state["epoch"], state["epoch_step"]
        best = state["best"]
        _set_rng_state(state["rng"])
        LOG.info("resumed from %s at step %d (epoch %d, batch %d)", state_path, step, epoch,
                 epoch_step)
    model: torch.nn.Module = net
    if info.world > 1:
        model = DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    weights = loss_weights(cfg)
    writer = _tensorboard(out, info.is_main)

    def save_state() -> None:
        if not info.is_main:
            return
        payload = {
            "format": STATE_FORMAT, "model": net.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "scaler": scaler.state_dict(), "step": step,
            "epoch": epoch, "epoch_step": epoch_step, "best": best, "rng": _rng_state(),
            "config": to_dict(cfg),
        }
        write_state(state_path, payload)

    stop_at = total_steps if cfg.max_steps is None else min(total_steps, cfg.max_steps)
    val_results: dict | None = None
    history: list[dict[str, float]] = []
    started = time.monotonic()
    step0, data_wait, nonfinite = step, 0.0, 0
    model.train()
    while step < stop_at and epoch < epochs:
        train_set.set_epoch(epoch)
        sampler = DistributedSampler(train_set, num_replicas=info.world, rank=info.rank,
                                     shuffle=True, seed=cfg.seed, drop_last=True)
        sampler.set_epoch(epoch)
        skip = epoch_step * cfg.batch_size * cfg.grad_accum
        loader = make_loader(train_set, cfg.batch_size, cfg.num_workers,
                             seed=cfg.seed * 1000 + epoch, sampler=SkipSampler(sampler, skip))
        with_pose = epoch >= cfg.pose_loss_start_epoch
        batches = iter(loader)
        progress = None
        if info.is_main:
            from tqdm import tqdm

            progress = tqdm(total=steps_per_epoch, initial=epoch_step, desc=f"epoch {epoch}",
                            unit="step", leave=False, disable=not sys.stderr.isatty())
        while epoch_step < steps_per_epoch and step < stop_at:
            opt.zero_grad(set_to_none=True)
            logs: dict[str, float] = {}
            features_only = step < cfg.nce_warmup_steps
            for micro in range(cfg.grad_accum):
                waited = time.monotonic()
                batch = to_device(next(batches), device)
                data_wait += time.monotonic() - waited
                sync = micro == cfg.grad_accum - 1 or info.world == 1
                ctx = model.no_sync() if not sync else contextlib.nullcontext()
                with ctx:
                    with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                        out_ = forward(model, batch, features_only)
                    loss, logs = total_loss(out_, batch, weights,
                                            with_pose and not features_only,
                                            net.config.native_turns)
                    scaler.scale(loss / cfg.grad_accum).backward()
            scaler.unscale_(opt)
            grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.clip_grad)
            if math.isfinite(logs["loss"]) and math.isfinite(float(grad_norm)):
                scaler.step(opt)
                nonfinite = 0
            else:
                # A batch that yields NaN or infinity is skipped, never learned from.
                nonfinite += 1
                LOG.warning("step %d: non-finite loss or gradient, batch skipped (%d in a "
                            "row)", step, nonfinite)
                if nonfinite >= MAX_NONFINITE_STEPS:
                    raise RuntimeError(f"{nonfinite} non-finite steps in a row at step {step}: "
                                       "lower the learning rate or check the data")
            scaler.update()
            sched.step()
            step += 1
            epoch_step += 1
            if cfg.save_every and step % cfg.save_every == 0 and epoch_step < steps_per_epoch:
                save_state()
            history.append(dict(logs))
            if progress is not None:
                progress.update(1)
                progress.set_postfix(loss=f"{logs['loss']:.3f}",
                                     epe=f"{logs.get('epe', math.nan):.2f}")
            if step % cfg.log_every == 0 or step == stop_at:
                elapsed = time.monotonic() - started
                LOG.info("step %d epoch %d loss %.4f flow %s pose %s epe %s px nce %s acc %s "
                         "lr %.3g grad %.3f; %.2f s/step, waiting for data %.0f %%", step,
                         epoch, logs["loss"], _fmt(logs, "flow_loss"), _fmt(logs, "pose_loss"),
                         _fmt(logs, "epe"), _fmt(logs, "nce_loss"), _fmt(logs, "nce_acc"),
                         sched.get_last_lr()[0], float(grad_norm), elapsed / (step - step0),
                         100.0 * data_wait / max(elapsed, 1e-9))
                if writer is not None:
                    for key, value in logs.items():
                        writer.add_scalar(f"train/{key}", value, step)
                    writer.add_scalar("train/lr", sched.get_last_lr()[0], step)
        if progress is not None:
            progress.close()
        if epoch_step < steps_per_epoch and step < total_steps:
            save_state()  # stopped by --max-steps inside an epoch
            break
        # The epoch is complete: validate, keep the best, checkpoint.
        epoch += 1
        epoch_step = 0
        if val_set is not None:
            pred = predict(net, val_set, device, cfg.val_batch_size or cfg.batch_size,
                           cfg.num_workers, info, limit=cfg.val_limit, amp=use_amp)
            val_results = score(pred)
            value = float(val_results["estimate"][cfg.select_metric])
            LOG.info("validation after epoch %d: %s %.4f (prior %.4f), median %.3f m",
                     epoch, cfg.select_metric, value,
                     float(val_results["prior"][cfg.select_metric]),
                     val_results["estimate"]["distance_median_m"])
            if writer is not None:
                writer.add_scalar(f"val/{cfg.select_metric}", value, step)
            if value < best:
                best = value
                if info.is_main:
                    _export(net, out / "best.pt", cfg.save_half, epoch=epoch, step=step,
                            validation=val_results, dataset=cfg.dataset)
        save_state()
    finished = step >= total_steps
    if info.world > 1:
        # DDP keeps replicas in lockstep; check it, since a silent divergence ruins a run.
        digest = float(sum(p.detach().double().sum() for p in net.parameters()))
        digests: list[float] = [0.0] * info.world
        dist.all_gather_object(digests, digest)
        if len(set(digests)) != 1:
            raise RuntimeError(f"replicas diverged: parameter sums {digests}")
        LOG.info("all %d ranks hold the same weights (parameter sum %.9g)", info.world, digest)
    if finished and info.is_main:
        _export(net, out / "model.pt", cfg.save_half, epoch=epoch, step=step,
                dataset=cfg.dataset)
        if cfg.export:
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
    LOG.info("%s at step %d of %d after %.1f s", "finished" if finished else "stopped", step,
             total_steps, time.monotonic() - started)
    if writer is not None:
        writer.close()
    if info.world > 1:
        dist.barrier()
    return {"step": step, "epoch": epoch, "finished": finished, "best": best,
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
