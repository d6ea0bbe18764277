"""Estimates from a few timed steps: a run's time for ``--dry-run``, and a ``--budget`` of seconds or MACs
turned into epochs the same way for every model."""
import math
import time
from pathlib import Path

import torch

from .data import open_split
from .planning import build_model, task_models
from .profiling import count_macs
from .records import read_json
from .files import write_json_atomic
from .training import LossOf, SingleTaskBatches, make_optimizers

WARM_UP, TIMED = 2, 3


def _batches(train_set, batch, seed):
    """Training batches for timing, epoch after epoch (a small set may hold fewer than the steps timed)."""
    stream = SingleTaskBatches(train_set, batch, seed)
    epoch = 0
    while True:
        yield from stream.epoch(epoch)
        epoch += 1


def resolve_budget(plan, data_root, out_dir, machine) -> None:
    """Turn a ``--budget seconds=S`` or ``macs=M`` into epochs (and, below one epoch, training clips) for this
    model, the same way for every model: MACs as 3x the forward MACs of each training clip (forward and
    backward), seconds from timing a few training steps here. The conversion is kept beside the runs, so
    an interrupted run resumes under the same epochs instead of timing again."""
    if not plan.budget or plan.budget[0] == "epochs":
        return
    kind, value = plan.budget
    part = plan.parts[0]
    cache = Path(out_dir) / "runs" / part.task.name / f".budget__{plan.model_spec.name}__{plan.profile}__{kind}{value:g}.json"
    estimate = None
    if machine.processes.main:
        estimate = read_json(cache) if cache.exists() else None
        if estimate is None:
            estimate = _estimate_budget(plan, data_root, machine, kind, value)
            write_json_atomic(cache, estimate)
    estimate = machine.processes.broadcast(estimate)
    for item in plan.parts:
        item.train["epochs"] = int(estimate["epochs"])
        if estimate.get("train_samples"):
            item.train["train_samples"] = int(estimate["train_samples"])
    plan.budget_estimate = estimate


def _estimate_budget(plan, data_root, machine, kind, value) -> dict:
    part = plan.parts[0]
    train_set = open_split(part.dataset_spec, data_root, "train", part.task)
    clips = min(len(train_set), part.train["train_samples"] or len(train_set))
    batch = int(part.train["batch_size"])
    steps_per_epoch = max(1, clips // batch)
    model = build_model(plan)
    view = task_models(plan, model)[0]
    if kind == "macs":
        per_epoch = 3 * count_macs(view, part.task) * steps_per_epoch * batch
        epochs = value / per_epoch if per_epoch else 1.0
        basis = {"training_macs_per_epoch": per_epoch, "rule": "3 x forward MACs per training clip"}
    else:
        model.to(machine.device).train()
        loss_of = LossOf(model)
        optimizers = make_optimizers(model, plan.train)
        batches = _batches(train_set, batch, plan.seed)
        times = []
        for step in range(WARM_UP + TIMED):  # the first steps warm caches and kernels up
            x, y, _ = next(batches)
            start = time.perf_counter()
            loss = loss_of(x.to(machine.device), y.to(machine.device), step)
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for optimizer in optimizers:
                optimizer.step()
            times.append(time.perf_counter() - start)
        per_step = sorted(times[WARM_UP:])[TIMED // 2]
        epochs = value / (per_step * steps_per_epoch)
        basis = {"seconds_per_step": per_step, "rule": "training steps timed on this machine"}
    estimate = {"kind": kind, "value": value, "epochs": max(1, math.floor(epochs)), **basis}
    if epochs < 1:  # less than one epoch: one epoch over fewer clips
        estimate["train_samples"] = max(batch, int(epochs * steps_per_epoch) * batch)
    return estimate


def estimate_seconds(plan, train_set, test_set, machine) -> float:
    """Training steps x the time of a few timed steps, plus the test batches x one timed test batch."""
    part = plan.parts[0]
    model = build_model(plan)
    view = task_models(plan, model)[0]
    model.to(machine.device)
    batch = int(part.train["batch_size"])
    steps = max(1, len(train_set) // batch) * int(part.train["epochs"])
    per_step = 0.0
    if steps and any(p.requires_grad for p in model.parameters()) and len(train_set):
        loss_of, optimizers = LossOf(model).train(), make_optimizers(model, part.train)
        batches = _batches(train_set, batch, plan.seed)
        times = []
        for step in range(WARM_UP + TIMED):
            x, y, _ = next(batches)
            start = time.perf_counter()
            loss = loss_of(x.to(machine.device), y.to(machine.device), step)
            loss.backward()
            for optimizer in optimizers:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - start)
        per_step = sorted(times[WARM_UP:])[TIMED // 2]  # the median of the timed steps
    eval_batch = int(part.train["eval_batch_size"])
    x, _ = next(iter(torch.utils.data.DataLoader(test_set, batch_size=eval_batch)))
    view.eval()
    with torch.no_grad():
        start = time.perf_counter()
        view(x.to(machine.device), part.task.t_out)
        per_eval = time.perf_counter() - start
    return per_step * steps + per_eval * -(-len(test_set) // eval_batch)
