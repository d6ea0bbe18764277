"""Training: optimizers and schedule, seeded batches (one task or several), the loop with a checkpoint
after every epoch, and resuming from it."""
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from .data import Clips, base_dataset
from .errors import UserError
from .files import write_with
from .profiling import Stopwatch


class RunFailed(Exception):
    """A run that started but could not finish (e.g. NaN loss); the other runs go on."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False


def _optimizer(kind, groups, lr, weight_decay):
    if kind == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if kind == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    raise UserError(f"optimizer '{kind}' is not one of adam, adamw, sgd")


def make_optimizers(model, train_cfg):
    """The run's optimizer (first; the schedule drives it) and one more per parameter group that
    names its own ``optimizer`` (see :meth:`stbench.STModel.optimizer_param_groups`)."""
    lr, wd = float(train_cfg["lr"]), float(train_cfg["weight_decay"] or 0.0)
    groups = model.optimizer_param_groups(train_cfg)
    groups = [dict(g) for g in (groups or [{"params": [p for p in model.parameters() if p.requires_grad]}])]
    shared = [g for g in groups if "optimizer" not in g]
    optimizers = [_optimizer(train_cfg["optimizer"], shared, lr, wd)] if shared else []
    for group in groups:
        if "optimizer" in group:
            kind = group.pop("optimizer")
            optimizers.append(_optimizer(kind, [group], float(group.get("lr", lr)),
                                         float(group.get("weight_decay", 0.0))))
    return optimizers


def make_schedule(optimizer, train_cfg, total_steps):
    if train_cfg["schedule"] == "onecycle" and total_steps > 0:
        max_lr = [group["lr"] for group in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total_steps)
    if train_cfg["schedule"] == "cosine" and total_steps > 0:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return None


class SingleTaskBatches:
    """Batches of one training set: a seeded shuffle per epoch, so a resumed run sees the same order."""

    def __init__(self, dataset, batch_size, seed, task=None):
        self.dataset, self.batch_size, self.seed, self.task = dataset, int(batch_size), seed, task

    def __len__(self):
        return max(1, len(self.dataset) // self.batch_size)  # drop_last keeps batch shapes fixed

    def epoch(self, epoch):
        base = base_dataset(self.dataset)
        if isinstance(base, Clips):
            base.set_epoch(epoch)
        order = torch.Generator().manual_seed(self.seed * 100003 + epoch)
        loader = DataLoader(self.dataset, batch_size=self.batch_size, shuffle=True, generator=order,
                            drop_last=len(self.dataset) >= self.batch_size, num_workers=0)
        return ((x, y, self.task) for x, y in loader)


class JointBatches:
    """Every task's batches once per epoch, each batch from one task, tasks interleaved in a seeded order."""

    def __init__(self, parts: List[SingleTaskBatches], seed):
        self.parts, self.seed = parts, seed

    def __len__(self):
        return sum(len(batches) for batches in self.parts)

    def epoch(self, epoch):
        slots = torch.cat([torch.full((len(batches),), i) for i, batches in enumerate(self.parts)])
        order = slots[torch.randperm(len(slots), generator=torch.Generator().manual_seed(self.seed * 7919 + epoch))]
        streams = [iter(batches.epoch(epoch)) for batches in self.parts]
        for i in order.tolist():
            yield next(streams[i])


@dataclass
class TrainResult:
    epochs: int = 0
    steps: int = 0
    epoch_seconds: List[float] = field(default_factory=list)
    losses: List[float] = field(default_factory=list)
    resumed_from_epoch: Optional[int] = None


def save_checkpoint(path, state) -> None:
    write_with(path, lambda tmp: torch.save(state, tmp))


def load_own_checkpoint(path, device, label=""):
    """An stbench checkpoint (tensors and plain values only: nothing in it can run code), or None when it
    cannot be read: a truncated, foreign or tampered-with file is moved aside (kept, never deleted) and the
    run trains from the start, so a rerun never fails the same way again."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        if isinstance(state, dict) and {"model", "epoch", "config_hash"} <= set(state):
            return state
        problem = "it is not an stbench checkpoint"
    except Exception as error:
        problem = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
    aside = Path(path).with_name(f"{Path(path).name}.unreadable-{int(time.time())}")
    os.replace(path, aside)
    log(f"stbench: warning: {label}: the checkpoint {Path(path).resolve()} cannot be used ({problem}); "
        f"moved it to {aside.name} and training from the start")
    return None


def train(model, batches, train_cfg, device, checkpoint, run_hash, label="") -> TrainResult:
    """Train for ``train_cfg['epochs']`` epochs, checkpointing after each; resume from ``checkpoint``.

    ``batches.epoch(e)`` yields ``(x, y, task)``: ``task`` is None for a single-task run and the task's
    name for a joint one (then passed to ``model.loss(..., task=task)``). A checkpoint that finished
    every epoch restores the weights and trains nothing (a finished run re-evaluated).
    """
    result = TrainResult()
    epochs = int(train_cfg["epochs"])
    if epochs == 0 or not any(p.requires_grad for p in model.parameters()):
        return result
    optimizers = make_optimizers(model, train_cfg)
    schedule = make_schedule(optimizers[0], train_cfg, epochs * len(batches))
    start_epoch = 0
    state = load_own_checkpoint(checkpoint, device, label) if Path(checkpoint).exists() else None
    if state is not None:
        if state["config_hash"] == run_hash:
            model.load_state_dict(state["model"])
            for optimizer, saved in zip(optimizers, state["optimizers"]):
                optimizer.load_state_dict(saved)
            if schedule is not None and state.get("schedule") is not None:
                schedule.load_state_dict(state["schedule"])
            torch.set_rng_state(state["torch_rng"])
            start_epoch, result.steps = state["epoch"], state["step"]
            result.epoch_seconds, result.losses = list(state["epoch_seconds"]), list(state["losses"])
            result.resumed_from_epoch = start_epoch
            if start_epoch < epochs:
                log(f"stbench: {label}: resuming after epoch {start_epoch} from {checkpoint}")
    grad_clip = train_cfg.get("grad_clip")
    for epoch in range(start_epoch, epochs):
        model.on_epoch_start(epoch)
        model.train()
        total, count = 0.0, 0
        bar = tqdm(batches.epoch(epoch), total=len(batches), desc=f"{label} epoch {epoch + 1}/{epochs}",
                   leave=False, disable=None)
        with Stopwatch(device) as watch:
            for x, y, task in bar:
                x, y = x.to(device), y.to(device)
                loss = model.loss(x, y, result.steps) if task is None else model.loss(x, y, result.steps, task=task)
                if loss.ndim != 0:
                    raise RunFailed(f"loss() returned a tensor of shape {tuple(loss.shape)}; it must return a scalar")
                if not torch.isfinite(loss):
                    raise RunFailed(f"loss became {loss.item()} at epoch {epoch + 1}, step {result.steps}; "
                                    "lower the learning rate (--set lr=...)")
                for optimizer in optimizers:
                    optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), float(grad_clip))
                for optimizer in optimizers:
                    optimizer.step()
                if schedule is not None:
                    schedule.step()
                result.steps += 1
                total += loss.item()
                count += 1
                bar.set_postfix(loss=f"{loss.item():.4g}")
        result.epoch_seconds.append(watch.seconds)
        result.losses.append(total / max(count, 1))
        log(f"stbench: {label}: epoch {epoch + 1}/{epochs} loss {result.losses[-1]:.5g} ({watch.seconds:.1f} s)")
        save_checkpoint(checkpoint, {
            "config_hash": run_hash, "epoch": epoch + 1, "step": result.steps, "model": model.state_dict(),
            "optimizers": [o.state_dict() for o in optimizers], "schedule": schedule.state_dict() if schedule else None,
            "torch_rng": torch.get_rng_state(), "epoch_seconds": result.epoch_seconds, "losses": result.losses,
        })
    result.epochs = epochs
    return result
