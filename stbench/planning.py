"""Planning: everything one run resolves before anything is trained or written, for 1..N tasks (N > 1 is
one model trained jointly on all of them), and the run's training and evaluation identities."""
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import plugins
from .config import (BUDGET_KINDS, check_frame_fit, check_seed, config_hash, ignored_budget, resolve,
                     training_identity)
from .errors import UserError, nearest
from .tasks import Task


@dataclass(frozen=True)
class TaskPart:
    """One task of a run: its dataset, resolved settings and the metrics it is scored with."""

    task: Any  # stbench.Task, shape filled in
    dataset_spec: Any
    train: Dict[str, Any]
    hparams: Dict[str, Any]
    overrides: Dict[str, Any]
    metric_names: List[str]
    strict_metrics: bool  # named by the user (an unknown one is an error) or the dataset's defaults
    ignored_budget: Dict[str, Any] = field(default_factory=dict)  # what the model declared for an equal-budget profile


@dataclass(frozen=True)
class RunPlan:
    """One run: a model, its task(s), a profile and a seed, every setting resolved.

    Frozen: made once by :func:`plan_run` and never changed; a step that settles more (a seconds / MACs budget
    turned into epochs, the weights file an evaluation scores) makes a new plan with ``dataclasses.replace``.
    :meth:`to_json` / :func:`plan_from_json` carry it to another process (a grid's runs) as it is."""

    model_spec: Any
    parts: List[TaskPart]
    profile: str
    seed: int
    metric_options: Dict[str, Any]
    precision: str = "32"  # 32 | 16-mixed | bf16-mixed: part of the training identity
    budget: Optional[Tuple[str, float]] = None  # (epochs | seconds | macs, value) from --budget
    budget_estimate: Dict[str, Any] = field(default_factory=dict)  # how a seconds / MACs budget became epochs
    checkpoint_sha256: Optional[str] = None  # evaluating given weights (stbench eval) instead of training
    samples: int = 1  # predictions per test clip for a stochastic model (evaluation identity, not training)
    frame_interval: int = 1  # evaluate on every k-th frame (temporal-resolution robustness; stbench eval)
    trained_on: Optional[Dict[str, Any]] = None  # the run whose weights stbench eval scores (its task, run, file)

    @property
    def joint(self) -> bool:
        return len(self.parts) > 1

    @property
    def train(self) -> Dict[str, Any]:
        """The settings the training loop follows (the first task's, for a joint run)."""
        return self.parts[0].train

    @property
    def hash(self) -> str:
        """Training identity: what changes the trained weights (never the metrics or the test clips)."""
        weights_only = training_identity

        if self.checkpoint_sha256:  # the weights are the file's: the architecture and the file identify them
            part = self.parts[0]
            interval = {"frame_interval": self.frame_interval} if self.frame_interval != 1 else {}
            return config_hash({"model": self.model_spec.name, "task": part.task.name, "profile": self.profile,
                                "hparams": part.hparams, "checkpoint": self.checkpoint_sha256, **interval})
        mixed = {} if self.precision == "32" else {"precision": self.precision}  # 32-bit hashes as before
        if not self.joint:
            part = self.parts[0]
            return config_hash({"model": self.model_spec.name, "task": part.task.name, "profile": self.profile,
                                "seed": self.seed, "train": weights_only(part.train), "hparams": part.hparams,
                                **mixed})
        return config_hash({"model": self.model_spec.name, "profile": self.profile, "seed": self.seed,
                            "tasks": [[p.task.name, weights_only(p.train), p.hparams] for p in self.parts], **mixed})

    def evaluation_hash(self, part: TaskPart, checkpoint: Optional[str] = None) -> str:
        """Evaluation identity of one task on top of the training: metrics, their options, test clips."""
        sampled = {"samples": self.samples} if self.samples != 1 else {}  # K = 1 hashes as before
        if self.frame_interval != 1:
            sampled["frame_interval"] = self.frame_interval
        return config_hash({"metrics": part.metric_names, "options": self.metric_options,
                            "test_samples": part.train["test_samples"], "checkpoint": checkpoint, **sampled})

    @property
    def run_name(self) -> str:
        joint = f"__joint{len(self.parts)}" if self.joint else ""
        origin = "checkpoint" if self.checkpoint_sha256 else f"seed{self.seed}"
        return f"{self.model_spec.name}{joint}__{self.profile}__{origin}__{self.hash}"

    @property
    def label(self) -> str:
        tasks = ",".join(p.task.name for p in self.parts)
        return f"{self.model_spec.name} {'joint(' + tasks + ')' if self.joint else tasks} {self.profile} seed {self.seed}"

    def budget_record(self, part: TaskPart, train_clips: int) -> Dict[str, Any]:
        """The training budget this task ran under, for the record and the board's budget line."""
        kind, value = self.budget or ("epochs", part.train["epochs"])
        return {"kind": kind, "value": value, "epochs": part.train["epochs"], "train_clips": int(train_clips),
                "batch_size": part.train["batch_size"], "model_declared": dict(part.ignored_budget),
                **({"estimate": dict(self.budget_estimate)} if self.budget_estimate else {})}

    def run_dir(self, out_dir, part: TaskPart) -> Path:
        return Path(out_dir) / "runs" / part.task.name / self.run_name

    def to_json(self) -> Dict[str, Any]:
        """The plan as JSON values: names for the specs (a process looks them up in its own registry), every
        resolved setting as it is, and the identity it had, which :func:`plan_from_json` checks."""
        return {"model": self.model_spec.name, "profile": self.profile, "seed": self.seed,
                "metric_options": dict(self.metric_options), "precision": self.precision,
                "budget": list(self.budget) if self.budget else None, "budget_estimate": dict(self.budget_estimate),
                "checkpoint_sha256": self.checkpoint_sha256, "samples": self.samples,
                "frame_interval": self.frame_interval, "trained_on": self.trained_on,
                "parts": [{"task": p.task.name, "train": dict(p.train), "hparams": dict(p.hparams),
                           "overrides": dict(p.overrides), "metric_names": list(p.metric_names),
                           "strict_metrics": p.strict_metrics, "ignored_budget": dict(p.ignored_budget)}
                          for p in self.parts],
                "identity": {"hash": self.hash, "run": self.run_name}}

    def checkpoint_path(self, out_dir) -> Path:
        """A single-task run keeps its checkpoint in its run folder; a joint run, beside all its tasks."""
        if self.joint:
            return Path(out_dir) / "runs" / "joint" / self.run_name / "checkpoint.pt"
        return self.run_dir(out_dir, self.parts[0]) / "checkpoint.pt"


def plan_from_json(values: Dict[str, Any], where: str = "the plan") -> RunPlan:
    """The plan :meth:`RunPlan.to_json` wrote, with this process's specs; one line if it no longer resolves to
    the identity it was written with (a plugin changed in between)."""
    try:
        model_spec = plugins.get_model(values["model"])
        parts = []
        for part in values["parts"]:
            task = plugins.resolve_task(part["task"])
            parts.append(TaskPart(task, plugins.get_dataset(task.dataset), dict(part["train"]), dict(part["hparams"]),
                                  dict(part["overrides"]), list(part["metric_names"]), bool(part["strict_metrics"]),
                                  dict(part.get("ignored_budget") or {})))
        plan = RunPlan(model_spec, parts, str(values["profile"]), check_seed(values["seed"]),
                       dict(values["metric_options"]), str(values["precision"]),
                       tuple(values["budget"]) if values.get("budget") else None, dict(values["budget_estimate"]),
                       values.get("checkpoint_sha256"), int(values["samples"]), int(values["frame_interval"]),
                       values.get("trained_on"))
        expected = values["identity"]["hash"]
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(f"{where}: not a plan stbench wrote ({type(error).__name__}: {error})") from None
    if plan.hash != expected:
        raise UserError(f"{where}: the run now resolves to identity {plan.hash}, not {expected} as planned (a plugin "
                        "or its settings changed since); plan the runs again")
    return plan


ENSEMBLE_METRICS = ("crps", "spread_skill")


def plan_part(model_spec, task, profile, overrides, metrics, samples=1) -> TaskPart:
    task = plugins.resolve_task(task)
    dataset_spec = plugins.get_dataset(task.dataset)
    train, hparams, applied = resolve(model_spec, dataset_spec, profile, dict(overrides or {}))
    check_frame_fit(hparams, dataset_spec.shape, f"model '{model_spec.name}' on {dataset_spec.name} ({profile})")
    names = list(metrics) if metrics else list(dataset_spec.default_metrics)
    gridded = dataset_spec.value_range is None or bool(dataset_spec.metric_options.get("spatial_norm"))
    if not metrics and samples > 1 and gridded:  # a sampled forecast of gridded data: its ensemble scores too
        names += [name for name in ENSEMBLE_METRICS if name not in names]
    for name in names if metrics else ():
        plugins.get_metric(name)
    ignored = {k: v for k, v in ignored_budget(model_spec, dataset_spec, profile).items()
               if k not in applied and v != train[k]}
    return TaskPart(task, dataset_spec, train, hparams, applied, names, strict_metrics=bool(metrics),
                    ignored_budget=ignored)


def parse_budget(text: Optional[str]) -> Optional[Tuple[str, float]]:
    """``--budget epochs=N|seconds=S|macs=M`` as (kind, value); MACs may be written 5e15."""
    if not text:
        return None
    kind, sep, value = str(text).partition("=")
    if not sep or kind not in BUDGET_KINDS:
        raise UserError(f"--budget {text}: expected epochs=N, seconds=S or macs=M")
    try:
        number = float(value)
    except ValueError:
        raise UserError(f"--budget {text}: '{value}' is not a number") from None
    if number <= 0 or (kind == "epochs" and not number.is_integer()):
        raise UserError(f"--budget {text}: the value must be {'a whole number' if kind == 'epochs' else 'a number'} > 0")
    return kind, int(number) if kind == "epochs" else number


def plan_run(model_name, tasks, profile, seed=0, overrides=None, metrics=None, metric_options=None,
             precision="32", budget=None, samples=None) -> RunPlan:
    """The plan of one run of ``model_name`` on one task (a task name or Task) or several (a joint run)."""
    model_spec = plugins.get_model(model_name)
    tasks = [tasks] if isinstance(tasks, (str, Task)) else list(tasks)
    if len(tasks) > 1 and not model_spec.multitask:
        raise UserError(f"model '{model_spec.name}' cannot be trained jointly on several tasks (its plugin "
                        "declares no build_joint); run it without --joint")
    if len({plugins.resolve_task(t).name for t in tasks}) != len(tasks):
        raise UserError(f"--joint: a task is named twice in {', '.join(map(str, tasks))}")
    samples = model_spec.samples if samples is None else int(samples)
    if samples < 1:
        raise UserError(f"--samples must be at least 1, got {samples}")
    parts = [plan_part(model_spec, task, profile, overrides, metrics, samples) for task in tasks]
    if budget and budget[0] == "epochs":  # the same epochs for every model; seconds / MACs resolve at run time
        parts = [replace(part, train={**part.train, "epochs": budget[1]}) for part in parts]
    return RunPlan(model_spec, parts, profile, check_seed(seed), dict(metric_options or {}), precision, budget,
                   samples=samples)


def build_model(plan: RunPlan):
    """The model a plan trains: an STModel for one task, a MultiTaskModel for several."""
    spec = plan.model_spec
    try:
        if plan.joint:
            return spec.build_joint([p.task for p in plan.parts], {p.task.name: dict(p.hparams) for p in plan.parts})
        return spec.build(plan.parts[0].task, dict(plan.parts[0].hparams))
    except UserError:
        raise
    except (TypeError, ValueError) as error:
        raise UserError(f"model '{spec.name}' cannot be built for {', '.join(p.task.name for p in plan.parts)} "
                        f"with {plan.parts[0].hparams}: {error}") from None


def task_models(plan: RunPlan, model) -> List[Any]:
    """One single-task view per part: the model itself, or each task's view of a joint model."""
    return [model.for_task(p.task.name) for p in plan.parts] if plan.joint else [model]


def check_metric_options(options, metric_names, where: str = "this command") -> Dict[str, Any]:
    """``--metric-option`` values checked against the options the named metrics declare (``MetricSpec.options``):
    a key none of them reads is one line naming the nearest known key (and the metric that reads it, if it is
    not computed here); each value is checked against its kind and range. Metrics that declare nothing let
    any key through. Returns the values, converted where harmless."""
    options = dict(options or {})
    if not options:
        return options
    installed = plugins.metrics()
    specs = [installed[name] for name in dict.fromkeys(metric_names) if name in installed]
    declared: Dict[str, Any] = {}
    for spec in specs:
        for key, setting in (spec.options or {}).items():
            declared.setdefault(key, setting)
    open_ended = [spec.name for spec in specs if spec.options is None]
    checked = {}
    for key, value in options.items():
        if key in declared:
            checked[key] = declared[key].check(key, value, "--metric-option")
            continue
        if open_ended:
            checked[key] = value
            continue
        readers = sorted(spec.name for spec in installed.values() if key in (spec.options or {}))
        computed = ", ".join(spec.name for spec in specs) or "none"
        if readers:
            raise UserError(f"--metric-option {key}: read by {', '.join(readers)}, not among the metrics of {where} "
                            f"({computed}); add it with --metrics or drop the option")
        everything = {k for spec in installed.values() for k in (spec.options or {})}
        raise UserError(f"--metric-option {key}: no metric reads it{nearest(key, everything)}; the metrics of "
                        f"{where} ({computed}) read: {', '.join(sorted(declared)) or 'no option'}")
    return checked


def plans_for(models: Sequence[str], tasks: Sequence, profile: str, seeds: Sequence[int], overrides=None,
              metrics=None, metric_options=None, joint=False, precision="32", budget=None,
              samples=None) -> List[RunPlan]:
    """Every run of a command: each model on each task and seed, or each model jointly on all tasks."""
    if joint and len(tasks) < 2:
        raise UserError("--joint trains one model on several tasks; name at least two with --tasks")
    groups = [list(tasks)] if joint else [[task] for task in tasks]
    plans = [plan_run(model, group, profile, seed, overrides, metrics, metric_options, precision, budget, samples)
             for group in groups for model in models for seed in seeds]
    checked = check_metric_options(metric_options, [name for plan in plans for part in plan.parts
                                                    for name in part.metric_names], "these runs")
    return [replace(plan, metric_options=dict(checked)) for plan in plans]
