"""Running: one orchestrator executes a plan of 1..N tasks (open data, build, profile, train, evaluate, write
the records), and a list of plans where one failing run never stops the others."""
import contextlib
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from .checkpoints import load_weights, read_checkpoint
from .compiling import Compiled, compile_model
from .data import describe, open_all_splits, open_split, open_splits, validation_source
from .errors import UserError
from .distributed import SINGLE, Processes
from .estimates import budget_line, estimate_seconds, resolve_budget
from .evaluation import PredictionWriter, build_metrics, evaluate
from .logs import DEFAULT_LOGGERS, RunLog, warnings_into
from .files import as_disk_full, locked, remove_stale_temporaries, try_locked, write_with
from .planning import RunPlan, build_model, task_models
from .profiling import count_macs
from .records import (RECORD_NAME, RunRecord, early_failure_record, fail_record, finish_record, read_record,
                      start_record, write_record)
from .training import (Loading, JointBatches, RunFailed, SingleTaskBatches, TrainResult, Validation, default_workers,
                       log, seed_everything, train)

SAMPLE_NAME = "sample.npz"
BEST_NAME = "best.pt"
LOCK_NAME = ".lock"


@dataclass
class Machine:
    """Where and how a run executes; none of it changes what the run means, all of it goes in the record
    (precision, which does change the weights, is part of the plan)."""

    device: str = "cpu"
    workers: Optional[int] = None  # DataLoader workers; None: the machine's default
    processes: Processes = SINGLE
    loggers: Tuple[str, ...] = DEFAULT_LOGGERS
    compile: str = "off"  # --compile: off | on (torch.compile; outputs equal eager's to float rounding)

    def loading(self) -> Loading:
        workers = default_workers(self.device, self.processes.world) if self.workers is None else int(self.workers)
        cuda = self.device.startswith("cuda") and workers > 0
        return Loading(workers=workers, pin_memory=cuda, persistent=cuda,
                       rank=self.processes.rank, world=self.processes.world)

    def describe(self, global_batch: int, loading: Loading) -> dict:
        return {"distributed": self.processes.describe(global_batch),
                "loading": {"workers": loading.workers, "pin_memory": loading.pin_memory,
                            "persistent_workers": loading.persistent}}


def pick_device(requested: Optional[str] = None) -> str:
    """The device a run uses: the one asked for if this machine has it, else CUDA when present, else CPU."""
    if requested:
        if requested.startswith("cuda"):
            if not torch.cuda.is_available():
                raise UserError(f"--device {requested}: CUDA is not available on this machine; use --device cpu")
            index = int(requested.split(":")[1]) if ":" in requested else 0
            if index >= torch.cuda.device_count():
                raise UserError(f"--device {requested}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                                f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
        if requested == "mps" and not torch.backends.mps.is_available():
            raise UserError("--device mps: Apple's MPS is not available on this machine; use --device cpu")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def dry_run(plans: List[RunPlan], data_root, out_dir, machine: Optional[Machine] = None, say=print) -> float:
    """``stbench run --dry-run``: each run's folder and state, resolved settings, whether its data is there,
    and an estimate of its time from a few training steps and one test batch timed here. Writes nothing."""
    import json as _json

    machine = machine or Machine()
    total = 0.0
    for plan in plans:
        part = plan.parts[0]
        say(f"{plan.label}")
        say(f"  run folder  {plan.run_dir(out_dir, part)}")
        done = finished_records(plan, out_dir, force=False)
        checkpoint = plan.checkpoint_path(out_dir)
        say(f"  state       {'done (skipped)' if done else 'resumes from its checkpoint' if checkpoint.exists() else 'new'}")
        say(f"  train       {_json.dumps(part.train, default=str)}")
        say(f"  hparams     {_json.dumps(part.hparams, default=str)}")
        if part.ignored_budget:
            say(f"  budget      the profile's, not the model's {_json.dumps(part.ignored_budget)}")
        try:
            train_set, test_set = open_splits(part.dataset_spec, data_root, part.task, part.train["train_samples"],
                                              part.train["test_samples"])
        except UserError as error:
            say(f"  data        MISSING: {error}")
            continue
        say(f"  data        found: {len(train_set)} training clips, {len(test_set)} test clips under "
            f"{Path(data_root).resolve()}")
        if done:
            continue
        seconds = estimate_seconds(plan, train_set, test_set, machine)
        total += seconds
        say(f"  estimate    {seconds / 60:.1f} min on {machine.device} ({plan.train['epochs']} epochs)")
    say(f"estimated total: {total / 60:.1f} min for {len(plans)} run(s) (timed from a few steps; a rough guide)")
    return total


def check_data(plans: List[RunPlan], data_root, out_dir=None, force: bool = False, training: bool = True,
               speak: bool = True) -> Tuple[List[RunPlan], Dict[str, str]]:
    """Before any run starts: the data of every task the unfinished plans name, opened once per task (the test
    split, and the training split when the runs train). A task whose data is missing or unreadable is one line
    for the task (not one per run), and none of its runs starts. Returns (the plans to run, {task: reason})."""
    missing: Dict[str, str] = {}
    checked = set()
    for plan in plans:
        if out_dir is not None and finished_records(plan, out_dir, force):
            continue  # done: it reads no data
        for part in plan.parts:
            if part.task.name in checked:
                continue
            checked.add(part.task.name)
            try:
                for split in ("train", "test") if training else ("test",):
                    open_split(part.dataset_spec, data_root, split, part.task)
            except UserError as error:
                missing[part.task.name] = str(error)
    for task, reason in missing.items() if speak else ():  # rank 0 speaks for all processes
        count = sum(any(p.task.name == task for p in plan.parts) for plan in plans)
        log(f"stbench: error: {task} ({count} run{'s' if count != 1 else ''} not started): {reason}")
    return [plan for plan in plans if not any(p.task.name in missing for p in plan.parts)], missing


def finished_records(plan: RunPlan, out_dir, force: bool) -> Optional[List[RunRecord]]:
    """The records of this very run and evaluation when all are finished (then nothing runs again)."""
    if force:
        return None
    found = []
    for part in plan.parts:
        record = read_record(plan.run_dir(out_dir, part) / RECORD_NAME)
        evaluation = (record or {}).get("evaluation") or {}
        if not record or record["status"] != "ok" or evaluation.get("hash") != plan.evaluation_hash(part):
            return None
        found.append(record)
    return found


def save_sample(run_dir: Path, sample, value_range) -> Optional[Path]:
    if sample is None:
        return None
    lo, hi = value_range or (float("nan"), float("nan"))
    def write(tmp):
        with open(tmp, "wb") as handle:  # a handle, so numpy does not append '.npz' to the temporary name
            np.savez_compressed(handle, vmin=lo, vmax=hi, **sample)

    return write_with(run_dir / SAMPLE_NAME, write)


def tracker_identity(plan: RunPlan):
    """(config, tags) a tracker's run starts with: every resolved setting, and the stbench hash with the identity."""
    first = plan.parts[0]
    config = {"run": plan.run_name, "model": plan.model_spec.name, "family": plan.model_spec.family,
              "tasks": [p.task.name for p in plan.parts], "profile": plan.profile, "seed": plan.seed,
              "precision": plan.precision, "config_hash": plan.hash, "train": dict(first.train),
              "hparams": dict(first.hparams), "overrides": dict(first.overrides),
              "metric_options": dict(plan.metric_options or {})}
    tags = {"stbench_hash": plan.hash, "model": plan.model_spec.name,
            "task": ",".join(p.task.name for p in plan.parts), "profile": plan.profile, "seed": plan.seed}
    return config, tags


def log_strips(run_log, plan: RunPlan, samples, step: int) -> None:
    """Each task's prediction strip (inputs, truth, prediction of the sample clip) to the trackers that keep
    pictures; drawn in a temporary folder (the run folder keeps the clip itself, sample.npz)."""
    import tempfile

    from .figures import plot_strip

    with tempfile.TemporaryDirectory(prefix="stbench-strip-") as folder:
        for part, sample in zip(plan.parts, samples):
            if sample is None:
                continue
            path = Path(folder) / f"{part.task.name}.png"
            if plot_strip([(plan.model_spec.name, sample)], path, image_origin=part.dataset_spec.image_origin):
                run_log.image(f"strip/{part.task.name}" if plan.joint else "strip", path, step)


def execute(plan: RunPlan, data_root, out_dir, machine: Optional[Machine] = None, force=False,
            save_predictions=False) -> List[RunRecord]:
    """Run one plan to one record per task, holding the run's lock: a second process asked for the same
    run waits for the first and then finds it done, so no run trains twice at once. Under torchrun rank 0
    decides and holds the lock; every rank follows its decision."""
    machine = machine or Machine()
    processes = machine.processes
    plan = resolve_budget(plan, data_root, out_dir, machine)
    done = None
    if processes.main:
        done = finished_records(plan, out_dir, force or (save_predictions and not _predictions_saved(plan, out_dir)))
    if processes.broadcast(done is not None):
        if processes.main:
            _sweep_finished(plan, out_dir)
            log(f"stbench: {plan.label}: already done ({plan.run_dir(out_dir, plan.parts[0])}); --force runs it again")
        return done or []
    if not processes.main:
        return _execute(plan, data_root, out_dir, machine, force, save_predictions=save_predictions)
    where = plan.checkpoint_path(out_dir).parent
    waiting = lambda: log(f"stbench: {plan.label}: in progress in another process ({where}); waiting for it")  # noqa: E731
    with locked(where / LOCK_NAME, waiting):
        again = None if force else finished_records(plan, out_dir, force=False)
        if again is not None and (not save_predictions or _predictions_saved(plan, out_dir)) and not processes.active:
            log(f"stbench: {plan.label}: already done by another process ({plan.run_dir(out_dir, plan.parts[0])})")
            return again
        return _execute(plan, data_root, out_dir, machine, force, save_predictions=save_predictions)


class Progress:
    """One progress line over a whole command: runs done and left, failures, an ETA from the runs so far.
    A bar on a terminal; plain log lines when stderr is a file or a pipe (CI logs, launchers)."""

    def __init__(self, total: int, enabled: bool = True):
        import sys

        self.total, self.done, self.failed, self.enabled = total, 0, 0, enabled and total > 1
        self.started, self.current = time.time(), ""
        self.bar = None
        if self.enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="runs", unit="run", position=0, leave=True)

    def eta(self) -> str:
        if not self.done:
            return "ETA after the first run"
        left = (time.time() - self.started) / self.done * (self.total - self.done)
        return f"ETA {left / 60:.0f} min" if left >= 90 else f"ETA {left:.0f} s"

    def starting(self, label: str) -> None:
        self.current = label
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(label)
        else:
            failed = f", {self.failed} failed" if self.failed else ""
            log(f"stbench: [{self.done + 1}/{self.total}] {label} ({self.done} done{failed}, "
                f"{self.total - self.done} left, {self.eta()})")

    def ended(self, failed: bool) -> None:
        self.done += 1
        self.failed += int(failed)
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _silent(*_args, **_kwargs) -> None:
    pass


def _predictions_saved(plan: RunPlan, out_dir) -> bool:
    return all((plan.run_dir(out_dir, part) / name).exists() for part in plan.parts
               for name in ("predictions.npy", "targets.npy"))


def _reason(error: BaseException) -> str:
    return str(error) if isinstance(error, (RunFailed, UserError)) else f"{type(error).__name__}: {error}"


def _sweep_finished(plan: RunPlan, out_dir) -> None:
    """Remove temporary files a killed process left beside a finished run's files, when no process holds the
    run (a run found done is not executed again, so nothing else would ever remove them)."""
    where = plan.checkpoint_path(out_dir).parent
    with try_locked(where / LOCK_NAME) as held:
        if held:
            for folder in {where, *(plan.run_dir(out_dir, part) for part in plan.parts)}:
                remove_stale_temporaries(folder)


def _execute(plan: RunPlan, data_root, out_dir, machine: Machine, force, weights=None,
             save_predictions=False) -> List[RunRecord]:
    """:func:`_run` with library warnings going to the run's ``warnings.log`` (rank 0's)."""
    with warnings_into(plan.checkpoint_path(out_dir).parent if machine.processes.main else None):
        return _run(plan, data_root, out_dir, machine, force, weights, save_predictions)


def _run(plan: RunPlan, data_root, out_dir, machine: Machine, force, weights=None,
         save_predictions=False) -> List[RunRecord]:
    """Open data, build, profile, train (or resume, or restore a finished checkpoint to evaluate other
    metrics; or take ``weights``, a model with loaded weights and their notes, and train nothing), evaluate,
    write each record atomically. Whatever fails, each task's record says so. Under torchrun every process
    trains and evaluates its share; only rank 0 writes."""
    checkpoint = plan.checkpoint_path(out_dir)
    run_dirs = [plan.run_dir(out_dir, part) for part in plan.parts]
    started = time.time()
    records: List[RunRecord] = []
    processes, device = machine.processes, machine.device
    main = processes.main
    loading = machine.loading()
    writers, finished = [], []
    try:
        if main:
            for folder in run_dirs + [checkpoint.parent]:
                folder.mkdir(parents=True, exist_ok=True)
                remove_stale_temporaries(folder)
            if force and checkpoint.exists():
                checkpoint.unlink()
        processes.barrier()
        seed_everything(plan.seed)
        validates = not weights and plan.train["val_every"] > 0
        splits = [open_all_splits(p.dataset_spec, data_root, p.task, 0 if weights else p.train["train_samples"],
                                  p.train["test_samples"], validate=validates, val_samples=p.train["val_samples"],
                                  val_on_test=plan.train["select_on"] == "test", frame_interval=plan.frame_interval)
                  for p in plan.parts]
        data = [(train_set, test_set) for train_set, _, test_set in splits]
        metrics = [build_metrics(p.metric_names, p.dataset_spec, p.task, plan.metric_options,
                                 strict=p.strict_metrics) for p in plan.parts]
        model, loaded = weights if weights else (build_model(plan), None)
        views = task_models(plan, model)
        for part, view, (train_set, test_set) in zip(plan.parts, views, data):
            evaluation = {"hash": plan.evaluation_hash(part), "metrics": part.metric_names, "source": "trained"}
            if loaded:
                evaluation.update(source="checkpoint", checkpoint=loaded)
            if plan.trained_on:
                evaluation["trained_on"] = dict(plan.trained_on)
            if plan.frame_interval != 1:
                evaluation["frame_interval"] = plan.frame_interval
            described = {"root": str(data_root), "train": describe(train_set), "test": describe(test_set)}
            if validates:
                val_set = splits[len(records)][1]
                described["validation"] = {**(describe(val_set) if val_set is not None else {"clips": 0}),
                                           "from": "the test split (selected on test data, as OpenSTL does)"
                                           if plan.train["select_on"] == "test" else validation_source(part.dataset_spec)}
            record = start_record(plan, part, view, described, device, evaluation, count_macs(view, part.task))
            record.update(machine.describe(plan.train["batch_size"], loading),
                          budget=plan.budget_record(part, len(train_set)))
            records.append(record)
        model.to(device)
        if machine.compile == "on" and plan.joint:
            compiled = Compiled("on", note="--compile applies to single-task runs; this joint run went on eager")
            if main:
                log(f"stbench: note: {compiled.note}")
        else:
            compiled = compile_model(model, machine.compile, _compile_sample(plan, data, device)
                                     if machine.compile == "on" else None, train=not weights,
                                     log=log if main else _silent)
        for record in records:
            record["compile"] = compiled.record()
        if main and not weights:  # a budget a person would not ask for: one line before the first epoch
            line = budget_line(plan, splits, model, device, checkpoint)
            if line:
                log(line)
        trained = TrainResult()
        if not weights:
            streams = [SingleTaskBatches(train_set, plan.train["batch_size"], plan.seed,
                                         task=part.task.name if plan.joint else None, loading=loading)
                       for part, (train_set, _) in zip(plan.parts, data)]
            batches = JointBatches(streams, plan.seed) if plan.joint else streams[0]
            logged = checkpoint.parent
            validation = _validation(plan, views, splits, device, processes, loading, checkpoint.parent / BEST_NAME)
            trained = train(model, batches, plan.train, device, checkpoint, plan.hash, plan.label, processes,
                            plan.precision, open_log=lambda resumed: RunLog(logged, machine.loggers, plan.run_name,
                                                                             resumed, *tracker_identity(plan)),
                            validation=validation)
        for part, run_dir, (_, test_set) in zip(plan.parts, run_dirs, data):
            writers.append(PredictionWriter(run_dir, part.dataset_spec, len(test_set), part.task)
                           if save_predictions and main else None)
        evaluated = [evaluate(view, test_set, part.train["eval_batch_size"], built, part.dataset_spec, part.task,
                              device, keep=writer, processes=processes, loading=loading, precision=plan.precision,
                              samples=plan.samples, seed=plan.seed,
                              more_metrics=lambda part=part: build_metrics(part.metric_names, part.dataset_spec,
                                                                           part.task, plan.metric_options,
                                                                           strict=part.strict_metrics))
                     for part, view, (_, test_set), built, writer in zip(plan.parts, views, data, metrics, writers)]
        for writer in writers:
            if writer is not None:
                writer.close()
        if not main:
            return []
        samples = [save_sample(run_dir, result.sample, part.dataset_spec.value_range)
                   for part, result, run_dir in zip(plan.parts, evaluated, run_dirs)]
        if trained.log is not None:
            for part, result in zip(plan.parts, evaluated):
                prefix = f"test/{part.task.name}/" if plan.joint else "test/"
                for key, value in result.metrics.items():
                    if value is not None:
                        trained.log.scalar(prefix + key, value, trained.steps)
            if trained.log.keeps_images:
                log_strips(trained.log, plan, samples, trained.steps)
            trained.log.close()
        if trained.epochs and trained.resumed_from_epoch == trained.epochs:
            for record in records:
                record["evaluation"]["source"] = "re-evaluated"  # weights restored from the finished checkpoint
        for record, result, run_dir, sample in zip(records, evaluated, run_dirs, samples):
            finish_record(record, trained, result, checkpoint, sample, started)
            write_record(run_dir, record)
            finished.append(record)
    except Exception as error:
        for writer in writers:
            if writer is not None:
                writer.abort()
        full = as_disk_full(error)  # a write outside stbench's own writers (a plugin's, a folder) that hit ENOSPC
        if main:
            _record_failure(plan, records, run_dirs, _reason(full or error), started, done=len(finished))
        if full is not None and full is not error:
            raise full from error
        raise
    return finished


def _compile_sample(plan: RunPlan, data, device):
    """(x, y, t_out) for compiling before the run: a batch of the task's test clips at the training batch size
    (both splits give clips of one shape)."""
    test_set = data[0][1]
    count = min(len(test_set), int(plan.train["batch_size"]))
    clips = [test_set[i] for i in range(count)]
    x = torch.stack([torch.as_tensor(c[0]) for c in clips]).to(device)
    y = torch.stack([torch.as_tensor(c[1]) for c in clips]).to(device)
    return x, y, plan.parts[0].task.t_out


def _validation(plan: RunPlan, views, splits, device, processes, loading, best_path) -> Optional[Validation]:
    """How the run scores its weights for selection and early stopping, or None when it does not validate (or
    no dataset of it declares validation clips: then the last epoch is evaluated, and the record says so)."""
    train_cfg = plan.train
    if train_cfg["val_every"] <= 0:
        return None
    pairs = [(part, view, val_set) for part, view, (_, val_set, _) in zip(plan.parts, views, splits)]
    if any(val_set is None for _, _, val_set in pairs):
        missing = [part.dataset_spec.name for part, _, val_set in pairs if val_set is None]
        log(f"stbench: warning: {plan.label}: {', '.join(missing)} declares no validation clips; "
            "evaluating the last epoch's weights")
        return None
    name = train_cfg["select_metric"]
    metric_spec = plugins_metric(name)

    def score() -> float:
        values = []
        for part, view, val_set in pairs:
            built = build_metrics([name], part.dataset_spec, part.task, plan.metric_options)
            result = evaluate(view, val_set, part.train["eval_batch_size"], built, part.dataset_spec, part.task,
                              device, processes=processes, loading=loading, precision=plan.precision)
            values.append(result.metrics.get(name) if processes.main else 0.0)
        if processes.main and any(v is None for v in values):
            raise RunFailed(f"select_metric {name} gave no value on the validation clips; choose another "
                            "(--set select_metric=mse)")
        return float(sum(values) / len(values))

    on = train_cfg["select_on"]
    source = ("the test split (selected on test data, as OpenSTL does)" if on == "test"
              else "; ".join(validation_source(p.dataset_spec) for p in plan.parts))
    return Validation(score=score, metric=name, higher_is_better=bool(metric_spec.higher_is_better),
                      every=int(train_cfg["val_every"]), on=on, best_path=best_path,
                      patience=train_cfg["patience"], clips=sum(len(v) for _, _, v in pairs), source=source)


def plugins_metric(name: str):
    from . import plugins

    return plugins.get_metric(name)


def _record_failure(plan, records, run_dirs, reason: str, started: float, done: int = 0) -> None:
    """Mark every task of a failed run failed in its record (best effort: the disk may be what failed), but the
    first ``done``, whose finished records were written."""
    for i, (part, run_dir) in enumerate(zip(plan.parts, run_dirs)):
        if i < done:
            continue
        record = records[i] if i < len(records) else early_failure_record(plan, part, reason, started)
        try:
            write_record(run_dir, fail_record(record, reason, started))
        except (OSError, UserError):  # the disk is full: the record does not fit either
            pass


def run_weights(folder: Path) -> Path:
    """The weights an stbench run folder's record evaluated: ``best.pt`` when it selected on validation (or
    test) data, else ``checkpoint.pt`` (whose moving average, if the run kept one, is what gets read)."""
    record = read_record(folder / RECORD_NAME) or {}
    if (record.get("selection") or {}).get("on") in ("val", "test") and (folder / BEST_NAME).exists():
        return folder / BEST_NAME
    return folder / "checkpoint.pt"


def source_run(path) -> Optional[RunRecord]:
    """The record of the stbench run whose folder (or file in it) ``path`` names, if any."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    return read_record(folder / RECORD_NAME) if (folder / RECORD_NAME).exists() else None


def evaluate_checkpoint(plan: RunPlan, path, data_root, out_dir, machine: Optional[Machine] = None,
                        save_predictions=False) -> List[RunRecord]:
    """``stbench eval``: the plan's model with the weights of ``path`` (a checkpoint file, or a run folder
    holding ``checkpoint.pt``), evaluated without training; its record says which file (sha256, format)."""
    if plan.joint:
        raise UserError("stbench eval takes one task at a time; name one with --tasks")
    path = Path(path)
    weights = read_checkpoint(run_weights(path) if path.is_dir() else path)
    model = build_model(plan)
    loaded = load_weights(model, weights, plan.model_spec)  # a mismatch is one line, and nothing is written
    plan = replace(plan, checkpoint_sha256=weights.sha256)
    machine = machine or Machine()
    where = plan.checkpoint_path(out_dir).parent
    with locked(where / LOCK_NAME) if machine.processes.main else contextlib.nullcontext():
        return _execute(plan, data_root, out_dir, machine, force=True, weights=(model, loaded),
                        save_predictions=save_predictions)


def execute_all(plans: List[RunPlan], data_root, out_dir, machine: Optional[Machine] = None, force=False,
                debug=False, report=print, checkpoint=None, save_predictions=False) -> Tuple[List[RunRecord], int]:
    """Every plan in turn; a run that fails for any reason is reported in one line (with the traceback
    only under ``debug``) and marked failed in its record, and the others go on. Returns (records, failures)."""
    records, failures = [], 0
    main = (machine or Machine()).processes.main
    say, report = (log, report) if main else (_silent, _silent)  # rank 0 speaks for all processes
    progress = Progress(len(plans), enabled=main)
    for plan in plans:
        progress.starting(plan.label)
        try:
            if checkpoint is not None:
                finished = evaluate_checkpoint(plan, checkpoint, data_root, out_dir, machine, save_predictions)
            else:
                finished = execute(plan, data_root, out_dir, machine, force=force, save_predictions=save_predictions)
        except KeyboardInterrupt:
            raise
        except (RunFailed, UserError) as error:
            failures += 1
            progress.ended(failed=True)
            say(f"stbench: error: {plan.label}: {error}")
            continue
        except Exception as error:  # a fault in a plugin or the machine: this run fails, the others go on
            failures += 1
            progress.ended(failed=True)
            full = as_disk_full(error)
            if full is not None:
                say(f"stbench: error: {plan.label}: {full}")
                continue
            say(f"stbench: error: {plan.label}: {type(error).__name__}: {error}"
                + ("" if debug else " (STBENCH_DEBUG=1 or --debug shows the traceback)"))
            if debug:
                traceback.print_exc()
            continue
        progress.ended(failed=False)
        for record in finished:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in record["metrics"].items() if isinstance(v, (int, float)))
            report(f"{record['model']} {record['task']} {record['profile']} seed {record['seed']}: {shown}")
        records.extend(finished)
    progress.close()
    return records, failures
