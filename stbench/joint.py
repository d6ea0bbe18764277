"""Joint multi-task training: one model trained on several tasks at once, evaluated on each."""
import time
from pathlib import Path

import torch

from .config import config_hash
from .engine import (CHECKPOINT_NAME, RECORD_NAME, RunFailed, SingleTaskBatches, build_metrics, evaluate,
                     existing_record, fail_record, finish_record, log, open_data, pick_device, plan_run,
                     seed_everything, start_record, test_loader, train)
from .errors import UserError
from .models import STModel


class TaskView(STModel):
    """One task's view of a joint model, so evaluation and profiling see a plain STModel."""

    def __init__(self, model, task_name):
        super().__init__()
        self.model, self.task_name = model, task_name
        self.record_notes = getattr(model, "record_notes", {})

    def forward(self, x, t_out):
        return self.model(x, t_out, task=self.task_name)


class JointBatches:
    """Every task's batches once per epoch, each batch from one task, tasks interleaved in a seeded order."""

    def __init__(self, parts, seed):
        self.parts, self.seed = parts, seed  # parts: [(task name, SingleTaskBatches)]

    def __len__(self):
        return sum(len(batches) for _, batches in self.parts)

    def epoch(self, epoch):
        slots = torch.cat([torch.full((len(batches),), i) for i, (_, batches) in enumerate(self.parts)])
        order = slots[torch.randperm(len(slots), generator=torch.Generator().manual_seed(self.seed * 7919 + epoch))]
        streams = [iter(batches.epoch(epoch)) for _, batches in self.parts]
        for i in order.tolist():
            x, y, _ = next(streams[i])
            yield x, y, self.parts[i][0]


def execute_joint(plans, data_root, out_dir, device="cpu", force=False):
    """Train one model on all plans' tasks; write one record per task, each marked as joint."""
    spec, lead = plans[0].model_spec, plans[0]
    joint_hash = config_hash({"model": spec.name, "profile": lead.profile, "seed": lead.seed,
                              "tasks": [[p.task.name, p.train, p.hparams] for p in plans]})
    run_name = f"{spec.name}__joint{len(plans)}__{lead.profile}__seed{lead.seed}__{joint_hash}"
    label = f"{spec.name} joint({','.join(p.task.name for p in plans)}) {lead.profile}"
    run_dirs = [Path(out_dir) / "runs" / p.task.name / run_name for p in plans]
    done = [existing_record(d / RECORD_NAME, label, force) for d in run_dirs]
    if all(r is not None for r in done):
        return done
    checkpoint = Path(out_dir) / "runs" / "joint" / run_name / CHECKPOINT_NAME
    if force and checkpoint.exists():
        checkpoint.unlink()
    started = time.time()
    seed_everything(lead.seed)
    data = [open_data(p, data_root) for p in plans]
    metrics = [build_metrics(p.metric_names, p.dataset_spec, p.task, p.metric_options, strict=p.strict_metrics)
               for p in plans]
    try:
        model = spec.build([p.task for p in plans], {p.task.name: dict(p.hparams) for p in plans})
    except (TypeError, ValueError) as error:
        raise UserError(f"model '{spec.name}' cannot be built jointly for "
                        f"{', '.join(p.task.name for p in plans)}: {error}") from None
    views = [TaskView(model, p.task.name) for p in plans]
    joint = {"tasks": [p.task.name for p in plans], "task_count": len(plans), "run": run_name,
             "config_hash": joint_hash, "train_settings_from": lead.task.name}
    records = []
    for plan, view, (train_set, test_set) in zip(plans, views, data):
        record = start_record(plan, view, data_root, train_set, test_set, device)
        record.update(run=run_name, joint=joint, checkpoint=str(checkpoint))
        records.append(record)
    model.to(device)
    for run_dir in run_dirs + [checkpoint.parent]:
        run_dir.mkdir(parents=True, exist_ok=True)
    batches = JointBatches([(p.task.name, SingleTaskBatches(train_set, lead.train["batch_size"], lead.seed))
                            for p, (train_set, _) in zip(plans, data)], lead.seed)
    try:
        result = train(model, batches, lead.train, device, checkpoint, joint_hash, label)
    except RunFailed as error:
        for record, run_dir in zip(records, run_dirs):
            fail_record(record, run_dir, error, started)
        raise
    finished = []
    for plan, view, (_, test_set), m, record, run_dir in zip(plans, views, data, metrics, records, run_dirs):
        evaluated = evaluate(view, test_loader(plan, test_set), m, plan.dataset_spec, plan.task, device)
        finished.append(finish_record(record, run_dir, result, evaluated, plan.dataset_spec.value_range, started))
    return finished


def run_joint(args, models, tasks, profile, overrides, metrics):
    """`stbench run --joint`: one joint model per named model over all named tasks."""
    from .cli import _metric_options
    from .leaderboard import write_leaderboards

    if len(tasks) < 2:
        raise UserError("--joint trains one model on several tasks; name at least two with --tasks")
    for spec in models:
        if not spec.multitask:
            raise UserError(f"model '{spec.name}' does not declare multi-task support "
                            "(ModelSpec(multitask=True)); run it without --joint")
    device = pick_device(args.device)
    failed = 0
    for spec in models:
        plans = [plan_run(spec.name, task, profile, args.seed, overrides, args.epochs, metrics,
                          _metric_options(args.metric_option)) for task in tasks]
        try:
            records = execute_joint(plans, args.data_root, args.out, device, force=args.force)
        except (RunFailed, UserError) as error:
            failed += 1
            log(f"stbench: error: {spec.name} joint: {error}")
            continue
        for record in records:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in record["metrics"].items() if isinstance(v, (int, float)))
            print(f"{record['model']} {record['task']} {profile} (joint x{len(plans)}): {shown}")
    for path in write_leaderboards(args.out, [t.name for t in tasks]):
        print(f"leaderboard: {path}")
    return 2 if failed else 0
