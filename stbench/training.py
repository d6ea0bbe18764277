"""Training: optimizers and schedule, seeded batches (one task or several), the loop with a checkpoint
after every epoch, and resuming from it."""
import contextlib
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from .data import base_dataset
from .distributed import SINGLE, wrap_for_training
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


def make_schedule(optimizer, train_cfg, total_steps, warmup_steps=0):
    """The learning-rate schedule over ``total_steps``; with ``warmup_steps`` a linear warm-up (from
    lr / (warmup + 1) to lr) comes first and the schedule runs over the steps after it."""
    main_steps = total_steps - warmup_steps
    main = None
    if train_cfg["schedule"] == "onecycle" and main_steps > 0:
        max_lr = [group["lr"] for group in optimizer.param_groups]
        main = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=main_steps)
    elif train_cfg["schedule"] == "cosine" and main_steps > 0:
        main = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=main_steps)
    if warmup_steps <= 0:
        return main
    return Warmup(optimizer, main, warmup_steps)


class Warmup:
    """A linear warm-up over ``steps`` optimizer steps, from 1 / (steps + 1) of the schedule's first learning
    rate up to it (the constant one where there is no schedule), then the schedule (``main``) from its start."""

    def __init__(self, optimizer, main, steps: int):
        self.optimizer, self.main, self.steps, self.done = optimizer, main, int(steps), 0
        self.target = [group["lr"] for group in optimizer.param_groups]
        self._scale(0)

    def _scale(self, done: int) -> None:
        for group, target in zip(self.optimizer.param_groups, self.target):
            group["lr"] = target * (done + 1) / (self.steps + 1)

    def step(self) -> None:
        self.done += 1
        if self.done <= self.steps:
            self._scale(self.done)
        elif self.main is not None:
            self.main.step()

    def state_dict(self):  # the learning rates themselves are restored with the optimizer's state
        return {"done": self.done, "target": self.target,
                "main": self.main.state_dict() if self.main is not None else None}

    def load_state_dict(self, state) -> None:
        self.done, self.target = int(state["done"]), list(state["target"])
        if self.main is not None and state.get("main") is not None:
            self.main.load_state_dict(state["main"])


class WeightAverage:
    """An exponential moving average of a model's parameters and buffers (``decay`` per optimizer step), kept
    in float32 beside the model; :meth:`swapped_in` puts it in the model's place (validation, evaluation)."""

    def __init__(self, model, decay: float):
        self.decay = float(decay)
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model) -> None:
        for key, value in model.state_dict().items():
            if value.dtype.is_floating_point:
                self.shadow[key].mul_(self.decay).add_(value.detach().float(), alpha=1.0 - self.decay)
            else:  # counters (BatchNorm's batches tracked) follow the model
                self.shadow[key].copy_(value)

    @contextlib.contextmanager
    def swapped_in(self, model):
        kept = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict({k: v.to(kept[k].dtype) for k, v in self.shadow.items()})
        try:
            yield model
        finally:
            model.load_state_dict(kept)

    def state_dict(self):
        return dict(self.shadow)

    def load_state_dict(self, state) -> None:
        self.shadow = {k: v.detach().clone().float() for k, v in state.items()}


@dataclass(frozen=True)
class Loading:
    """How batches reach the model: DataLoader workers, pinned memory and persistent workers (CUDA),
    this process's share."""

    workers: int = 0
    pin_memory: bool = False
    rank: int = 0
    world: int = 1
    persistent: bool = False  # one set of workers for the whole training, not one per epoch


def default_workers(device: str, world: int = 1) -> int:
    """DataLoader workers when none are asked for: none on CPU, where decoding competes with the model for
    the same cores (benchmarks/loader_workers.py measures it); on CUDA the cores of the node shared out."""
    if not str(device).startswith("cuda"):
        return 0
    return max(1, min(8, (os.cpu_count() or 2) // max(1, world) - 1))


class SingleTaskBatches:
    """Batches of one training set: a seeded shuffle per epoch, so a resumed run sees the same order.

    The order is global: with several processes each takes its ``batch_size / world`` slice of every
    global batch, so the run sees the same clips per step whatever the world size."""

    def __init__(self, dataset, batch_size, seed, task=None, loading: Loading = Loading()):
        self.dataset, self.batch_size, self.seed, self.task = dataset, int(batch_size), seed, task
        self.loading = loading
        self._loader = self._sampler = None  # the persistent loader, built on the first epoch
        if self.batch_size % loading.world:
            raise UserError(f"batch_size {self.batch_size} (the global batch) does not divide among "
                            f"{loading.world} processes; choose a multiple of {loading.world}")

    def __len__(self):
        return max(1, len(self.dataset) // self.batch_size)  # drop_last keeps batch shapes fixed

    def global_batches(self, epoch) -> List[List[int]]:
        order = torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(self.seed * 100003 + epoch))
        size = self.batch_size if len(self.dataset) >= self.batch_size else len(self.dataset)
        return [order[i:i + size].tolist() for i in range(0, len(self.dataset) - size + 1, size)]

    def batches(self, epoch) -> List[List[int]]:
        """This process's slice of every global batch of ``epoch``."""
        share, rank = self.batch_size // self.loading.world, self.loading.rank
        return [batch[rank * share:(rank + 1) * share] if self.loading.world > 1 else batch
                for batch in self.global_batches(epoch)]

    def epoch(self, epoch):
        if self.loading.persistent and self.loading.workers > 0:
            return self._persistent_epoch(epoch)
        base_dataset(self.dataset).set_epoch(epoch)  # before the loader starts its workers: they see this epoch
        loader = DataLoader(self.dataset, batch_sampler=self.batches(epoch), num_workers=self.loading.workers,
                            pin_memory=self.loading.pin_memory,
                            generator=torch.Generator().manual_seed(self.seed * 7 + epoch))  # never the global RNG
        return ((x, y, self.task) for x, y in loader)

    def _persistent_epoch(self, epoch):
        """The same batches through one loader whose workers outlive the epoch: every index carries its
        epoch, and a worker's copy of the clips moves to it (``set_epoch``) before the first clip."""
        if self._loader is None:
            self._sampler = _EpochBatches(self)
            self._loader = DataLoader(_EpochIndexed(self.dataset), batch_sampler=self._sampler,
                                      num_workers=self.loading.workers, pin_memory=self.loading.pin_memory,
                                      persistent_workers=True, generator=torch.Generator().manual_seed(self.seed * 7))
        self._sampler.epoch = epoch
        return ((x, y, self.task) for x, y in self._loader)


class _EpochBatches:
    """A batch sampler for a persistent loader: the batches of the epoch set last, as (epoch, index) pairs."""

    def __init__(self, batches: "SingleTaskBatches"):
        self.source, self.epoch = batches, 0

    def __len__(self):
        return len(self.source)

    def __iter__(self):
        return iter([[(self.epoch, i) for i in batch] for batch in self.source.batches(self.epoch)])


class _EpochIndexed(torch.utils.data.Dataset):
    """A dataset indexed by (epoch, index): the clips are moved to the epoch (in this process) on its first index."""

    def __init__(self, dataset):
        self.dataset, self.epoch = dataset, None

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, item):
        epoch, index = item
        if epoch != self.epoch:
            base_dataset(self.dataset).set_epoch(epoch)
            self.epoch = epoch
        return self.dataset[index]


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
    log: Optional[object] = None  # the open RunLog, if any
    selection: Optional[dict] = None  # which weights were kept for evaluation, and why


@dataclass
class Validation:
    """Model selection: ``score()`` scores the model in place on the validation clips (the same number on every
    process); a pass after every ``every`` epochs and after the last; ``patience`` passes without improvement
    stop the training; the best weights are kept in ``best_path``."""

    score: Callable[[], float]
    metric: str
    higher_is_better: bool
    every: int
    on: str  # "val" or "test" (OpenSTL's procedure)
    best_path: Path
    patience: Optional[int] = None
    clips: int = 0
    source: str = ""

    def better(self, score: float, best: Optional[float]) -> bool:
        if best is None:
            return True
        return score > best if self.higher_is_better else score < best


def save_checkpoint(path, state) -> None:
    def write(tmp):
        with open(tmp, "wb") as handle:  # through a Python handle, a full disk keeps its errno (ENOSPC)
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())

    write_with(path, write)


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


class LossOf(torch.nn.Module):
    """``model.loss`` as a module's forward, so DistributedDataParallel sees (and synchronises) the pass
    that computes the loss, whatever hooks the model overrides."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, y, step, task=None):
        return self.model.loss(x, y, step) if task is None else self.model.loss(x, y, step, task=task)


def _check_loss(loss, what, where):
    """``loss`` (named ``what``: the loss, or a stage's) is a finite scalar, else the run fails saying so."""
    if loss.ndim != 0:
        raise RunFailed(f"{what} returned a tensor of shape {tuple(loss.shape)}; it must return a scalar")
    if not torch.isfinite(loss):
        raise RunFailed(f"{what.replace('()', '')} became {loss.item()} at {where}; "
                        "lower the learning rate (--set lr=...)")


def staged_step(model, optimizers, x, y, step, grad_clip=None, scaler=None, context=contextlib.nullcontext,
                where="") -> torch.Tensor:
    """One training step of a model with ``update_stages`` (see :meth:`stbench.STModel.stage_losses`): each
    stage's loss is back-propagated and only the parameters of the groups naming that stage are clipped and
    stepped (the others' gradients are dropped) before the next loss is asked for. Returns the sum of the
    stage losses, detached."""
    members = {}
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            stage = group.get("stage")
            if stage not in model.update_stages:
                raise RunFailed(f"{type(model).__name__} updates in stages {model.update_stages}, but an optimizer "
                                f"group names stage {stage!r}; optimizer_param_groups must name one for every group")
            members.setdefault(stage, []).extend(group["params"])
    losses = model.stage_losses(x, y, step)
    total = 0.0
    for expected in model.update_stages:
        with context():
            stage, loss = next(losses)
        if stage != expected:
            raise RunFailed(f"stage_losses yielded stage {stage!r} where {expected!r} was due "
                            f"(update_stages {model.update_stages})")
        _check_loss(loss, f"the {stage} loss of stage_losses()", f"{where}, step {step}".lstrip(", "))
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        own = {id(p) for p in members.get(stage, ())}
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if id(p) not in own:
                        p.grad = None  # another stage's parameters: not updated in this one
        stepped = [o for o in optimizers if any(p.grad is not None for g in o.param_groups for p in g["params"])]
        if scaler is not None:
            for optimizer in stepped:
                scaler.unscale_(optimizer)
        if grad_clip:
            torch.nn.utils.clip_grad_norm_([p for p in members.get(stage, ()) if p.grad is not None], float(grad_clip))
        for optimizer in stepped:
            scaler.step(optimizer) if scaler is not None else optimizer.step()
        if scaler is not None:
            scaler.update()
        total += loss.detach()
    losses.close()
    return total


PRECISIONS = ("32", "16-mixed", "bf16-mixed")


def autocast(device: str, precision: str):
    """Mixed precision for forward passes (``32``: none); ``16-mixed`` trains with a GradScaler (see :func:`train`)."""
    if precision == "32":
        return contextlib.nullcontext()
    dtype = torch.float16 if precision == "16-mixed" else torch.bfloat16
    return torch.autocast(device_type="cuda" if str(device).startswith("cuda") else "cpu", dtype=dtype)


def _resume_state(checkpoint, device, label, processes):
    """The checkpoint to resume from, the same on every process (rank 0 checks it first)."""
    state = None
    if processes.main and Path(checkpoint).exists():
        state = load_own_checkpoint(checkpoint, device, label)
    processes.barrier()
    if not processes.main and Path(checkpoint).exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
    return state


def _has_batchnorm(model) -> bool:
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


def train(model, batches, train_cfg, device, checkpoint, run_hash, label="", processes=SINGLE,
          precision="32", open_log=None, validation: Optional[Validation] = None) -> TrainResult:
    """Train for ``train_cfg['epochs']`` epochs, checkpointing after each; resume from ``checkpoint``.

    ``batches.epoch(e)`` yields ``(x, y, task)``: ``task`` is None for a single-task run and the task's
    name for a joint one (then passed to ``model.loss(..., task=task)``). A checkpoint that finished
    every epoch restores the weights and trains nothing (a finished run re-evaluated). With several
    processes the loss runs under DistributedDataParallel, each epoch's loss is the mean over processes,
    and only rank 0 writes the checkpoint (any world size resumes from it). ``open_log(resumed_step)``
    (optional) returns the run's :class:`stbench.logs.RunLog`, which gets the loss of every step and
    each epoch's summary; it is returned open in ``result.log`` for the evaluation's numbers.

    Training settings it follows besides the schedule: ``warmup_epochs`` (a linear warm-up first),
    ``accumulate`` (each batch in that many micro-batches, one optimizer step; the mean loss is the same),
    ``grad_clip`` (by global norm), ``ema_decay`` (an exponential moving average of the weights, which
    validation and evaluation use in the model's place). With ``validation`` the model is scored after
    every ``validation.every`` epochs and after the last; the best weights go to ``validation.best_path``
    and are the ones left in the model at the end when selecting on validation (or test) data;
    ``validation.patience`` passes without improvement end the training early. The model holds the weights
    to evaluate when this returns; ``result.selection`` says which.
    """
    result = TrainResult()
    epochs = int(train_cfg["epochs"])
    result.selection = {"on": "last", "epoch": epochs, "source": "no validation"}
    if epochs == 0 or not any(p.requires_grad for p in model.parameters()):
        result.selection["epoch"] = 0
        return result
    accumulate = int(train_cfg.get("accumulate", 1) or 1)
    if accumulate > 1 and (int(train_cfg["batch_size"]) // processes.world) % accumulate:
        raise UserError(f"accumulate={accumulate}: each process's batch of {int(train_cfg['batch_size']) // processes.world} "
                        "clips does not split into that many micro-batches; choose a divisor")
    optimizers = make_optimizers(model, train_cfg)
    warmup = int(round(float(train_cfg.get("warmup_epochs", 0) or 0) * len(batches)))
    schedule = make_schedule(optimizers[0], train_cfg, epochs * len(batches), min(warmup, epochs * len(batches)))
    # float16 gradients underflow without loss scaling, on CUDA as on CPU; the scale is resumed with the weights
    scaler = torch.amp.GradScaler(torch.device(device).type) if precision == "16-mixed" else None
    ema = WeightAverage(model, train_cfg["ema_decay"]) if train_cfg.get("ema_decay") else None
    chosen = {"history": [], "best_epoch": None, "best_score": None, "bad_passes": 0, "stopped_at": None}
    start_epoch = 0
    state = _resume_state(checkpoint, device, label, processes)
    if state is not None:
        if state["config_hash"] == run_hash:
            model.load_state_dict(state["model"])
            for optimizer, saved in zip(optimizers, state["optimizers"]):
                optimizer.load_state_dict(saved)
            if schedule is not None and state.get("schedule") is not None:
                schedule.load_state_dict(state["schedule"])
            if scaler is not None and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            if ema is not None and state.get("ema") is not None:
                ema.load_state_dict(state["ema"])
            if state.get("selection"):
                chosen.update(state["selection"])
            torch.set_rng_state(state["torch_rng"].cpu())
            start_epoch, result.steps = state["epoch"], state["step"]
            result.epoch_seconds, result.losses = list(state["epoch_seconds"]), list(state["losses"])
            result.resumed_from_epoch = start_epoch
            if start_epoch < epochs and chosen["stopped_at"] is None and processes.main:
                log(f"stbench: {label}: resuming after epoch {start_epoch} from {checkpoint}")
    staged = bool(model.update_stages)
    if staged and processes.active:
        raise UserError(f"{type(model).__name__} updates its parameters in stages ({', '.join(model.update_stages)}) "
                        "and trains on one process; run it without torchrun")
    if staged and accumulate > 1:
        raise UserError(f"{type(model).__name__} updates its parameters in stages; accumulate must be 1")
    runner = model if staged else wrap_for_training(LossOf(model), processes, str(device))
    run_log = open_log(result.steps if result.resumed_from_epoch else None) if open_log and processes.main else None
    result.log = run_log
    grad_clip = train_cfg.get("grad_clip")
    last_epoch = start_epoch if chosen["stopped_at"] is None else epochs
    for epoch in range(last_epoch, epochs):
        model.on_epoch_start(epoch)
        model.train()
        total, count = 0.0, 0
        bar = tqdm(batches.epoch(epoch), total=len(batches), desc=f"{label} epoch {epoch + 1}/{epochs}",
                   leave=False, disable=None if processes.main else True)
        with Stopwatch(device) as watch:
            for x, y, task in bar:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                pieces = [] if staged else model.split_batch(x, y)
                if staged:  # a GAN and the like: each stage's loss updates its own parameters in turn
                    pieces = [(x, y)]
                if not pieces:
                    raise RunFailed("split_batch() returned no pieces; it must return at least one (x, y)")
                piece_losses = []
                for piece_x, piece_y in pieces:  # one optimizer step per piece (usually the whole batch)
                    if staged:
                        piece_losses.append(staged_step(model, optimizers, piece_x, piece_y, result.steps, grad_clip,
                                                        scaler, lambda: autocast(device, precision),
                                                        f"epoch {epoch + 1}").item())
                        continue
                    for optimizer in optimizers:
                        optimizer.zero_grad(set_to_none=True)
                    loss_value = 0.0
                    for part, (xs, ys) in enumerate(zip(piece_x.chunk(accumulate), piece_y.chunk(accumulate))):
                        # DDP averages gradients once per optimizer step, on the last micro-batch
                        syncing = part == accumulate - 1 or not isinstance(runner, DistributedDataParallel)
                        with (contextlib.nullcontext() if syncing else runner.no_sync()):
                            with autocast(device, precision):
                                loss = runner(xs, ys, result.steps, task)
                            if loss.ndim != 0:
                                raise RunFailed(f"loss() returned a tensor of shape {tuple(loss.shape)}; it must "
                                                "return a scalar")
                            if not torch.isfinite(loss):
                                raise RunFailed(f"loss became {loss.item()} at epoch {epoch + 1}, step {result.steps}; "
                                                "lower the learning rate (--set lr=...)")
                            share = loss / accumulate if accumulate > 1 else loss
                            (scaler.scale(share) if scaler is not None else share).backward()
                        loss_value += share.item()
                    if scaler is not None:
                        for optimizer in optimizers:
                            scaler.unscale_(optimizer)
                    if grad_clip:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), float(grad_clip))
                    for optimizer in optimizers:
                        scaler.step(optimizer) if scaler is not None else optimizer.step()
                    if scaler is not None:
                        scaler.update()
                    piece_losses.append(loss_value)
                loss_value = sum(piece_losses) / len(piece_losses)
                if schedule is not None:
                    schedule.step()
                if ema is not None:
                    ema.update(model)
                result.steps += 1
                total += loss_value
                count += 1
                bar.set_postfix(loss=f"{loss_value:.4g}")
                if run_log is not None:
                    run_log.scalar("train/loss", loss_value, result.steps, epoch + 1)
                    run_log.scalar("train/lr", optimizers[0].param_groups[0]["lr"], result.steps, epoch + 1)
        result.epoch_seconds.append(watch.seconds)
        result.losses.append(processes.mean(total / max(count, 1)))
        if run_log is not None:
            run_log.scalar("train/epoch_loss", result.losses[-1], result.steps, epoch + 1)
            run_log.scalar("train/epoch_seconds", watch.seconds, result.steps, epoch + 1)
        if processes.main:
            log(f"stbench: {label}: epoch {epoch + 1}/{epochs} loss {result.losses[-1]:.5g} ({watch.seconds:.1f} s)")
        if validation is not None and ((epoch + 1) % validation.every == 0 or epoch + 1 == epochs):
            _validate(model, ema, validation, chosen, epoch + 1, run_hash, processes, run_log, result.steps, label)
        if processes.main:
            save_checkpoint(checkpoint, {
                "config_hash": run_hash, "epoch": epoch + 1, "step": result.steps, "model": model.state_dict(),
                "optimizers": [o.state_dict() for o in optimizers],
                "schedule": schedule.state_dict() if schedule else None, "torch_rng": torch.get_rng_state(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "ema": ema.state_dict() if ema is not None else None, "selection": chosen,
                "epoch_seconds": result.epoch_seconds, "losses": result.losses,
            })
        processes.barrier()
        if chosen["stopped_at"] is not None:
            break
    result.epochs = epochs
    result.selection = _select(model, ema, validation, chosen, epochs, device, train_cfg)
    if accumulate > 1 and _has_batchnorm(model):
        result.selection["batchnorm_micro_batches"] = (f"BatchNorm normalised over micro-batches of "
                                                       f"{int(train_cfg['batch_size']) // processes.world // accumulate} clips")
    return result


def _validate(model, ema, validation, chosen, epoch, run_hash, processes, run_log, steps, label) -> None:
    """One validation pass (with the weight average in place, if any); keep the best weights; count patience."""
    with (ema.swapped_in(model) if ema is not None else contextlib.nullcontext()):
        score = float(processes.broadcast(validation.score()))
        improved = validation.better(score, chosen["best_score"])
        if improved and processes.main:
            save_checkpoint(validation.best_path, {"config_hash": run_hash, "epoch": epoch, "score": score,
                                                   "model": model.state_dict()})
    model.train()
    chosen["history"].append([epoch, score])
    if improved:
        chosen.update(best_epoch=epoch, best_score=score, bad_passes=0)
    else:
        chosen["bad_passes"] += 1
    if run_log is not None:
        run_log.scalar(f"val/{validation.metric}", score, steps, epoch)
    if processes.main:
        log(f"stbench: {label}: validation {validation.metric} {score:.5g} after epoch {epoch}"
            f"{' (best)' if improved else ''}")
    if validation.patience is not None and chosen["bad_passes"] >= validation.patience:
        chosen["stopped_at"] = epoch
        if processes.main:
            log(f"stbench: {label}: no improvement in {validation.patience} validation passes; stopping after "
                f"epoch {epoch} (best: epoch {chosen['best_epoch']})")


def _select(model, ema, validation, chosen, epochs, device, train_cfg) -> dict:
    """Leave in the model the weights to evaluate, and say which: the best on validation (or test) data, or the
    last (their weight average with ``ema_decay``)."""
    trained_to = chosen["stopped_at"] or epochs
    selection = {"on": "last", "epoch": trained_to, "metric": None, "score": None,
                 "ema_decay": train_cfg.get("ema_decay"), "stopped_early_at": chosen["stopped_at"],
                 "history": [list(h) for h in chosen["history"]]}
    if validation is not None:
        selection.update(metric=validation.metric, higher_is_better=validation.higher_is_better,
                         val_clips=validation.clips, source=validation.source, every=validation.every,
                         patience=validation.patience)
        if chosen["history"]:
            last_epoch, last_score = chosen["history"][-1]
            if last_epoch == trained_to:
                selection["score"] = last_score
    if validation is not None and validation.on in ("val", "test") and chosen["best_epoch"] is not None:
        best = torch.load(validation.best_path, map_location=device, weights_only=True)
        model.load_state_dict(best["model"])
        selection.update(on=validation.on, epoch=int(best["epoch"]), score=float(best["score"]))
        return selection
    if ema is not None:
        model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in ema.shadow.items()})
    return selection
