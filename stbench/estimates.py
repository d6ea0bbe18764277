"""Estimates from a few timed steps: a run's time for ``--dry-run``, and a ``--budget`` of seconds or MACs
turned into epochs the same way for every model."""
import contextlib
import copy
import math
import time
from pathlib import Path
from typing import Optional

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


def resolve_budget(plan, data_root, out_dir, machine):
    """Turn a ``--budget seconds=S`` or ``macs=M`` into epochs (and, below one epoch, training clips) for this
    model, the same way for every model: MACs as 3x the forward MACs of each training clip (forward and
    backward), seconds from timing a few training steps here. The conversion is kept beside the runs, so
    an interrupted run resumes under the same epochs instead of timing again. Returns the plan with those
    epochs (a new plan: plans are frozen), or the plan itself for an epochs budget or none."""
    from dataclasses import replace

    if not plan.budget or plan.budget[0] == "epochs":
        return plan
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
    settled = {"epochs": int(estimate["epochs"])}
    if estimate.get("train_samples"):
        settled["train_samples"] = int(estimate["train_samples"])
    return replace(plan, parts=[replace(item, train={**item.train, **settled}) for item in plan.parts],
                   budget_estimate=estimate)


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


def time_training_step(model, train_set, train_cfg, seed, device) -> float:
    """The median time of a few training steps (forward, backward, optimizer) of ``model`` on ``train_set``,
    after two that warm caches and kernels up."""
    loss_of, optimizers = LossOf(model).train(), make_optimizers(model, train_cfg)
    batches = _batches(train_set, int(train_cfg["batch_size"]), seed)
    times = []
    for step in range(WARM_UP + TIMED):
        x, y, _ = next(batches)
        start = time.perf_counter()
        loss = loss_of(x.to(device), y.to(device), step)
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return sorted(times[WARM_UP:])[TIMED // 2]  # the median of the timed steps


def time_test_batch(view, test_set, eval_batch, t_out, device) -> float:
    """The time of one forward pass over a test batch (eval mode, no gradients)."""
    x, _ = next(iter(torch.utils.data.DataLoader(test_set, batch_size=int(eval_batch))))
    view.eval()
    with torch.no_grad():
        start = time.perf_counter()
        view(x.to(device), t_out)
        return time.perf_counter() - start


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
        per_step = time_training_step(model, train_set, part.train, plan.seed, machine.device)
    eval_batch = int(part.train["eval_batch_size"])
    per_eval = time_test_batch(view, test_set, eval_batch, part.task.t_out, machine.device)
    return per_step * steps + per_eval * -(-len(test_set) // eval_batch)


# ---------------------------------------------------------------- budgets a person would not ask for

DAY = 24 * 3600
TIMED_FROM_STEPS = 2000  # a run of fewer training steps would need 43 s a step to last a day: not timed


@contextlib.contextmanager
def kept_random_state():
    """Every random generator a run draws from (Python's, numpy's, torch's CPU and CUDA) as it was before the
    block, so timing steps before a run changes nothing the run does."""
    import random

    import numpy as np

    python, numpy_state, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy_state)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def _duration(seconds: float) -> str:
    if seconds >= 2 * DAY:
        years = seconds / (365.25 * DAY)
        return f"{years:,.1f} years" if years >= 2 else f"{seconds / DAY:,.1f} days"
    return f"{seconds / 3600:.0f} hours"


def _epochs_done(plan, checkpoint) -> int:
    """Epochs the run's checkpoint already holds (0 when there is none or it is another run's)."""
    try:
        if not Path(checkpoint).exists():
            return 0
        state = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
        return int(state["epoch"]) if state.get("config_hash") == plan.hash else 0
    except Exception:  # noqa: BLE001 - unreadable: training will say so and start again
        return 0


def budget_line(plan, splits, model, device, checkpoint=None) -> Optional[str]:
    """One line before a run trains, when it asks for what a person would not: more clips than a dataset has
    (what it will use instead), or an estimated time over a day (from a few training steps timed here on a
    copy of the model, random state kept; what it will take). None when neither. The run starts anyway: a
    paper run on a GPU may well take days (README, "Reliability")."""
    said, slow = [], False
    trains = int(plan.train["epochs"]) > 0 and any(p.requires_grad for p in model.parameters())
    for part, (train_set, val_set, test_set) in zip(plan.parts, splits):
        name = part.dataset_spec.name
        checks = [("train_samples", train_set, "training")] if trains else []
        checks.append(("test_samples", test_set, "test"))
        if val_set is not None and val_set is not test_set:
            checks.insert(1, ("val_samples", val_set, "validation"))
        for key, dataset, what in checks:
            asked = part.train.get(key)
            if asked and dataset is not None and len(dataset) < int(asked):
                said.append(f"{key}={int(asked):,} asks for more clips than {name} has for {part.task.name} "
                            f"({len(dataset):,} {what} clips): it will use {len(dataset):,}")
    part, (train_set, _, test_set) = plan.parts[0], splits[0]
    batch, epochs = int(part.train["batch_size"]), int(part.train["epochs"])
    steps = sum(max(1, len(s[0]) // batch) for s in splits) * epochs if len(train_set) else 0
    if steps >= TIMED_FROM_STEPS and not plan.joint and trains:
        try:
            with kept_random_state():
                twin = copy.deepcopy(model)
                per_step = time_training_step(twin, train_set, part.train, plan.seed, device)
                eval_batch = int(part.train["eval_batch_size"])
                per_eval = time_test_batch(twin, test_set, eval_batch, part.task.t_out, device)
                del twin
        except Exception:  # noqa: BLE001 - a model that cannot be copied or timed here: no estimate, no hold-up
            per_step = None
        if per_step is not None:
            left = steps - steps // max(epochs, 1) * _epochs_done(plan, checkpoint)
            seconds = per_step * left + per_eval * -(-len(test_set) // eval_batch) * max(1, int(plan.samples))
            if seconds > DAY:
                slow = True
                said.append(f"it will take about {_duration(seconds)} on {device} ({left:,} training steps of "
                            f"{batch} clips at {per_step * 1000:.3g} ms each, timed here)")
    if not said:
        return None
    tail = ("; it starts now: every epoch is checkpointed, Ctrl-C stops it and the same command resumes"
            if slow else "")
    return f"stbench: {'warning' if slow else 'note'}: {plan.label}: {'; '.join(said)}{tail}"
