"""Train / evaluate loops, checkpoints and resume, seeds: one run from task to record."""
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from . import plugins
from .config import config_hash, resolve
from .data import base_dataset, statistics_of
from .errors import UserError
from .metrics import MetricContext, NotAvailable
from .profiling import Stopwatch, count_macs
from .models import count_params
from .records import RECORD_NAME, clean_floats, hardware, versions, write_json_atomic

CHECKPOINT_NAME = "checkpoint.pt"
SAMPLE_NAME = "sample.npz"


class RunFailed(Exception):
    """A run that started but could not finish (e.g. NaN loss); the others go on."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pick_device(requested: Optional[str] = None) -> str:
    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"--device {requested}: CUDA is not available on this machine; use --device cpu")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False


# ---------------------------------------------------------------- data

def open_split(dataset_spec, root, split, task):
    """Open one split, turning the plugin's I/O failures into a UserError with the layout."""
    try:
        return dataset_spec.open(str(root), split, task.t_in, task.t_out)
    except UserError:
        raise
    except (OSError, ValueError, KeyError, EOFError) as error:
        raise UserError(f"cannot read {dataset_spec.name} data under {root}: {error}. "
                        f"Expected layout:\n{dataset_spec.layout}") from None


def spread_subset(dataset, limit):
    """At most ``limit`` items, evenly spread over the dataset (deterministic, not the first N)."""
    if limit is None or limit >= len(dataset):
        return dataset
    indices = np.linspace(0, len(dataset) - 1, int(limit)).round().astype(int)
    return Subset(dataset, sorted(set(indices.tolist())))


def describe(dataset) -> Dict:
    return {"clips": len(dataset), "source": getattr(base_dataset(dataset), "description", "")}


# ---------------------------------------------------------------- evaluation

@dataclass
class EvalResult:
    """What streaming a test set through a model and metrics produced, with its timings."""

    metrics: Dict[str, Optional[float]]
    per_frame: Dict[str, List[float]]
    unavailable: Dict[str, str]
    inference_seconds: float
    data_seconds: float
    metric_seconds: float
    sequences: int
    sample: Optional[Dict[str, np.ndarray]] = None


def build_metrics(names, dataset_spec, task, options=None, strict=True):
    """Metric objects for ``names``; with ``strict=False`` unregistered names are skipped (dataset defaults)."""
    context = MetricContext(
        dataset=dataset_spec.name, task=task.name, value_range=dataset_spec.value_range,
        data_range=dataset_spec.data_range,
        spatial_norm=bool(dataset_spec.metric_options.get("spatial_norm", False)),
        options={**dict(dataset_spec.metric_options), **dict(options or {})},
    )
    built = []
    for name in names:
        if not strict and name not in plugins.metrics():
            log(f"stbench: note: default metric '{name}' of {dataset_spec.name} is not installed; skipped")
            continue
        built.append(plugins.get_metric(name).build(context))
    return built


@torch.no_grad()
def evaluate(model, loader, metrics, dataset_spec, task, device="cpu") -> EvalResult:
    """Stream the test set through the model and the metrics; time data, forward and metrics apart."""
    dataset_spec = statistics_of(dataset_spec, loader.dataset)  # data-derived normalisation, if any
    model.eval()
    for metric in metrics:
        metric.reset()
    data_s = infer_s = metric_s = 0.0
    sequences, sample = 0, None
    iterator = iter(loader)
    while True:
        start = time.perf_counter()
        try:
            x, y = next(iterator)
        except StopIteration:
            break
        x, y = x.to(device), y.to(device)
        data_s += time.perf_counter() - start
        with Stopwatch(device) as watch:
            pred = model(x, task.t_out)
        infer_s += watch.seconds
        if pred.shape != y.shape:
            raise RunFailed(f"model returned {tuple(pred.shape)} for targets {tuple(y.shape)}; "
                            f"forward(x, t_out) must return [B, t_out, C, H, W]")
        start = time.perf_counter()
        pred_n, true_n = dataset_spec.denormalize(pred.float()), dataset_spec.denormalize(y.float())
        for metric in metrics:
            metric.update(pred_n, true_n)
        metric_s += time.perf_counter() - start
        if sample is None:
            sample = {"inputs": dataset_spec.denormalize(x[0].float()).cpu().numpy(),
                      "truth": true_n[0].cpu().numpy(), "pred": pred_n[0].cpu().numpy()}
        sequences += x.shape[0]
    values, per_frame, unavailable = {}, {}, {}
    for metric in metrics:
        computed = metric.compute() if sequences else {}
        for key, value in computed.items():
            values[key] = None if isinstance(value, NotAvailable) or value is None else float(value)
            if values[key] is None:
                unavailable[key] = value.reason if isinstance(value, NotAvailable) else "unavailable"
        frames = metric.per_frame() if sequences and not unavailable.get(metric.name) else None
        per_frame.update(frames or {})
    return EvalResult(values, per_frame, unavailable, infer_s, data_s, metric_s, sequences, sample)


# ---------------------------------------------------------------- training

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
    names its own ``optimizer`` (e.g. UniSTD's ranks, trained with SGD as the paper does).

    Models may define ``optimizer_param_groups(train_cfg)``; by default every trainable parameter
    goes to the run's optimizer.
    """
    lr, wd = float(train_cfg["lr"]), float(train_cfg["weight_decay"] or 0.0)
    groups = model.optimizer_param_groups(train_cfg) if hasattr(model, "optimizer_param_groups") else None
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


def save_checkpoint(path, state):
    tmp = Path(path).with_name(f".{Path(path).name}.tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


@dataclass
class TrainResult:
    epochs: int = 0
    steps: int = 0
    epoch_seconds: List[float] = field(default_factory=list)
    losses: List[float] = field(default_factory=list)
    resumed_from_epoch: Optional[int] = None


class SingleTaskBatches:
    """Batches of one training set: a seeded shuffle per epoch, so a resumed run sees the same order."""

    def __init__(self, dataset, batch_size, seed):
        self.dataset, self.batch_size, self.seed = dataset, int(batch_size), seed

    def __len__(self):
        return max(1, len(self.dataset) // self.batch_size)  # drop_last keeps batch shapes fixed

    def epoch(self, epoch):
        base = base_dataset(self.dataset)
        if hasattr(base, "set_epoch"):
            base.set_epoch(epoch)
        order = torch.Generator().manual_seed(self.seed * 100003 + epoch)
        loader = DataLoader(self.dataset, batch_size=self.batch_size, shuffle=True, generator=order,
                            drop_last=len(self.dataset) >= self.batch_size, num_workers=0)
        return ((x, y, None) for x, y in loader)


def train(model, batches, train_cfg, device, checkpoint, run_hash, label="") -> TrainResult:
    """Train for ``train_cfg['epochs']`` epochs, checkpointing after each; resume from ``checkpoint``.

    ``batches.epoch(e)`` yields ``(x, y, task)``; ``task`` is None for a single-task run and the task
    name for a joint run (then passed to ``model.loss(..., task=task)``).
    """
    result = TrainResult()
    epochs = int(train_cfg["epochs"])
    if epochs == 0 or not any(p.requires_grad for p in model.parameters()):
        return result
    optimizers = make_optimizers(model, train_cfg)
    schedule = make_schedule(optimizers[0], train_cfg, epochs * len(batches))
    start_epoch = 0
    if Path(checkpoint).exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state.get("config_hash") == run_hash:
            model.load_state_dict(state["model"])
            for optimizer, saved in zip(optimizers, state["optimizers"]):
                optimizer.load_state_dict(saved)
            if schedule is not None and state.get("schedule") is not None:
                schedule.load_state_dict(state["schedule"])
            torch.set_rng_state(state["torch_rng"])
            start_epoch, result.steps = state["epoch"], state["step"]
            result.epoch_seconds, result.losses = list(state["epoch_seconds"]), list(state["losses"])
            result.resumed_from_epoch = start_epoch
            log(f"stbench: {label}: resuming after epoch {start_epoch} from {checkpoint}")
    grad_clip = train_cfg.get("grad_clip")
    for epoch in range(start_epoch, epochs):
        if hasattr(model, "on_epoch_start"):
            model.on_epoch_start(epoch)
        model.train()
        total, count = 0.0, 0
        bar = tqdm(batches.epoch(epoch), total=len(batches), desc=f"{label} epoch {epoch + 1}/{epochs}",
                   leave=False, disable=None)
        with Stopwatch(device) as watch:
            for x, y, task in bar:
                x, y = x.to(device), y.to(device)
                loss = model.loss(x, y, result.steps) if task is None else model.loss(x, y, result.steps, task=task)
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


# ---------------------------------------------------------------- one run

@dataclass
class RunPlan:
    """Everything resolved for one run before anything is trained or written."""

    model_spec: object
    dataset_spec: object
    task: object
    profile: str
    seed: int
    train: Dict
    hparams: Dict
    overrides: Dict
    metric_names: List[str]
    metric_options: Dict
    strict_metrics: bool

    @property
    def hash(self) -> str:
        return config_hash({"model": self.model_spec.name, "task": self.task.name, "profile": self.profile,
                            "seed": self.seed, "train": self.train, "hparams": self.hparams})

    @property
    def run_name(self) -> str:
        return f"{self.model_spec.name}__{self.profile}__seed{self.seed}__{self.hash}"

    @property
    def label(self) -> str:
        return f"{self.model_spec.name} {self.task.name} {self.profile}"


def plan_run(model_name, task, profile, seed=0, overrides=None, epochs=None, metrics=None,
             metric_options=None) -> RunPlan:
    model_spec = plugins.get_model(model_name)
    task = plugins.resolve_task(task)
    dataset_spec = plugins.get_dataset(task.dataset)
    train_cfg, hparams, applied = resolve(model_spec, dataset_spec, profile, dict(overrides or {}))
    if epochs is not None:
        train_cfg["epochs"] = int(epochs)
        applied["epochs"] = int(epochs)
    names = list(metrics) if metrics else list(dataset_spec.default_metrics)
    if metrics:
        for name in names:
            plugins.get_metric(name)
    return RunPlan(model_spec, dataset_spec, task, profile, int(seed), train_cfg, hparams, applied, names,
                   dict(metric_options or {}), strict_metrics=bool(metrics))


def build_model(plan: RunPlan):
    try:
        model = plan.model_spec.build(plan.task, dict(plan.hparams))
    except UserError:
        raise
    except (TypeError, ValueError) as error:
        raise UserError(f"model '{plan.model_spec.name}' cannot be built for {plan.task.name} with "
                        f"{plan.hparams}: {error}") from None
    return model


def open_data(plan: RunPlan, data_root):
    """(train, test) sets of a plan, limited to the profile's sample counts."""
    train_set = spread_subset(open_split(plan.dataset_spec, data_root, "train", plan.task),
                              plan.train["train_samples"])
    test_set = spread_subset(open_split(plan.dataset_spec, data_root, "test", plan.task),
                             plan.train["test_samples"])
    if len(test_set) == 0:
        raise UserError(f"{plan.dataset_spec.name} under {data_root} holds no test clip of "
                        f"{plan.task.length} frames; check the data (stbench data check {plan.task.name})")
    return train_set, test_set


def existing_record(record_path, label, force):
    """The finished record of an identical run, unless --force asks to run it again."""
    if force or not record_path.exists():
        return None
    import json

    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("status") == "ok":
        log(f"stbench: {label}: already done ({record_path}); --force runs it again")
        return record
    return None


def start_record(plan: RunPlan, model, data_root, train_set, test_set, device, macs=None) -> Dict:
    """The record of a run about to train: every resolved setting, sizes, versions, hardware."""
    return {
        "schema_version": 1, "status": "running", "run": plan.run_name, "model": plan.model_spec.name,
        "family": plan.model_spec.family, "model_plugin": plan.model_spec.plugin, "task": plan.task.name,
        "dataset": plan.dataset_spec.name, "protocol": plan.task.protocol, "t_in": plan.task.t_in,
        "t_out": plan.task.t_out, "shape": list(plan.task.shape), "profile": plan.profile, "seed": plan.seed,
        "overrides": plan.overrides, "train": plan.train, "hparams": plan.hparams, "config_hash": plan.hash,
        "metric_options": plan.metric_options,
        "data": {"root": str(data_root), "train": describe(train_set), "test": describe(test_set)},
        "params": count_params(model), "macs": count_macs(model, plan.task) if macs is None else macs,
        "flops_convention": "MACs at batch 1, full inference rollout",
        "notes": dict(getattr(model, "record_notes", {}) or {}),
        "versions": versions(), "hardware": hardware(device),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def finish_record(record, run_dir: Path, result: TrainResult, evaluated: EvalResult, value_range, started):
    """Fill in training and evaluation results, save the sample clip, write the record atomically."""
    checkpoint = run_dir / CHECKPOINT_NAME
    if evaluated.sample is not None:
        lo, hi = value_range or (math.nan, math.nan)
        np.savez_compressed(run_dir / SAMPLE_NAME, vmin=lo, vmax=hi, **evaluated.sample)
    seconds = result.epoch_seconds
    record.update(
        status="ok", epochs=result.epochs, steps=result.steps, resumed_from_epoch=result.resumed_from_epoch,
        train_losses=result.losses, train_seconds=sum(seconds),
        train_seconds_per_epoch=(sum(seconds) / len(seconds)) if seconds else None,
        inference_seconds=evaluated.inference_seconds, test_sequences=evaluated.sequences,
        fps=evaluated.sequences / evaluated.inference_seconds if evaluated.inference_seconds > 0 else None,
        eval_data_seconds=evaluated.data_seconds, eval_metric_seconds=evaluated.metric_seconds,
        metrics=evaluated.metrics, per_frame=evaluated.per_frame, metrics_unavailable=evaluated.unavailable,
        checkpoint=str(checkpoint) if checkpoint.exists() else None,
        sample=str(run_dir / SAMPLE_NAME) if evaluated.sample is not None else None,
        duration_seconds=time.time() - started,
    )
    write_json_atomic(run_dir / RECORD_NAME, clean_floats(record))
    return record


def fail_record(record, run_dir: Path, error, started):
    record.update(status="failed", error=str(error), duration_seconds=time.time() - started)
    write_json_atomic(run_dir / RECORD_NAME, clean_floats(record))


def test_loader(plan: RunPlan, test_set):
    return DataLoader(test_set, batch_size=int(plan.train["eval_batch_size"]), shuffle=False, num_workers=0)


def execute(plan: RunPlan, data_root, out_dir, device="cpu", force=False) -> Dict:
    """Run one plan to a record: open data, build, profile, train, evaluate, write atomically."""
    run_dir = Path(out_dir) / "runs" / plan.task.name / plan.run_name
    done = existing_record(run_dir / RECORD_NAME, plan.label, force)
    if done is not None:
        return done
    checkpoint = run_dir / CHECKPOINT_NAME
    if force and checkpoint.exists():
        checkpoint.unlink()
    started = time.time()
    seed_everything(plan.seed)
    train_set, test_set = open_data(plan, data_root)
    metrics = build_metrics(plan.metric_names, plan.dataset_spec, plan.task, plan.metric_options,
                            strict=plan.strict_metrics)
    model = build_model(plan)
    record = start_record(plan, model, data_root, train_set, test_set, device)
    model.to(device)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        batches = SingleTaskBatches(train_set, plan.train["batch_size"], plan.seed)
        result = train(model, batches, plan.train, device, checkpoint, plan.hash, plan.label)
        evaluated = evaluate(model, test_loader(plan, test_set), metrics, plan.dataset_spec, plan.task, device)
    except RunFailed as error:
        fail_record(record, run_dir, error, started)
        raise
    return finish_record(record, run_dir, result, evaluated, plan.dataset_spec.value_range, started)
