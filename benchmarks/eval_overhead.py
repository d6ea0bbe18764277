"""Harness overhead: test-data loading, metrics, the run record and the boards, as a fraction of model forward time.

Streams a test set through `stbench.evaluation.evaluate` (the loop every run uses) once per model and metric
set, then writes what a run writes after it (the sample strip, the record, the task's board) into a scratch
folder, and prints (data s + metric s + record/board s) / forward s side by side. The goal is <= 5% for the
`quick` models on mmnist-10-10 with the pixel metrics. Untrained weights: only the times mean something.

Each (model, metric set) is measured --repeats times, alternating with the others, and the table gives the
median and the spread (min..max) of the overhead ratio (the machine may be shared).

Usage: python benchmarks/eval_overhead.py [--task mmnist-10-10] [--clips 1000] [--batch 32]
       [--models convnet,tau,ustep] [--profile quick] [--metrics pixel=mse,mae,ssim,psnr;all=...]
       [--device cpu] [--data-root ./data] [--metric-option KEY=VALUE ...] [--repeats 3]
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from stbench import STModel, allocator, plugins
from stbench.config import parse_overrides
from stbench.data import describe, open_split
from stbench.evaluation import build_metrics, evaluate
from stbench.leaderboard import refresh_leaderboards
from stbench.models import count_params
from stbench.planning import build_model, plan_run
from stbench.records import finish_record, start_record, write_record
from stbench.running import save_sample
from stbench.training import TrainResult

METRIC_SETS = "pixel=mse,mae,ssim,psnr"


class ConvNet(STModel):
    """A small recurrent-free stand-in: frames stacked on channels, four 3x3 convolutions."""

    def __init__(self, t_in, t_out, channels, width=64):
        super().__init__()
        self.t_out, self.channels = t_out, channels
        self.net = nn.Sequential(
            nn.Conv2d(t_in * channels, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, t_out * channels, 3, padding=1),
        )

    def forward(self, x, t_out):
        b, t, c, h, w = x.shape
        y = self.net(x.reshape(b, t * c, h, w)).reshape(b, self.t_out, c, h, w)
        return y[:, :t_out]


def spread_subset(dataset, count):
    """``count`` clips evenly spread over the whole test set (all of it when it is smaller)."""
    from torch.utils.data import Subset

    if count >= len(dataset):
        return dataset
    step = len(dataset) / count
    return Subset(dataset, [int(i * step) for i in range(count)])


def parse_metric_sets(text):
    sets = {}
    for item in text.split(";"):
        label, _, names = item.partition("=")
        sets[label.strip()] = [n.strip() for n in names.split(",") if n.strip()]
    return sets


def write_outputs(plan, model, test_set, result, out_dir, device):
    """What a run writes after evaluating (sample strip, record, the task's board); its seconds."""
    part = plan.parts[0]
    start = time.perf_counter()
    run_dir = plan.run_dir(out_dir, part)
    run_dir.mkdir(parents=True, exist_ok=True)
    sample = save_sample(run_dir, result.sample, part.dataset_spec.value_range)
    record = start_record(plan, part, model, {"root": "-", "test": describe(test_set)}, device,
                          {"hash": plan.evaluation_hash(part), "metrics": part.metric_names, "source": "trained"}, 0)
    finish_record(record, TrainResult(), result, None, sample, time.time())
    write_record(run_dir, record)
    refresh_leaderboards(out_dir, [part.task.name])
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mmnist-10-10")
    parser.add_argument("--clips", type=int, default=1000, help="test clips, evenly spread over the test set "
                        "(default: as many as the quick profile evaluates)")
    parser.add_argument("--batch", type=int, default=32, help="evaluation batch (default: the quick profile's)")
    parser.add_argument("--models", default="convnet,tau,ustep",
                        help="'convnet' (defined here) and/or registered models")
    parser.add_argument("--profile", default="quick", help="hyper-parameters of registered models")
    parser.add_argument("--metrics", default=METRIC_SETS, help="label=name,name;label=... (default: %(default)s)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data-root", default="./data")
    parser.add_argument("--metric-option", action="append", default=[], help="KEY=VALUE, e.g. fvd_i3d=PATH")
    parser.add_argument("--repeats", type=int, default=3, help="passes per (model, metric set), alternating")
    args = parser.parse_args()
    malloc = allocator.keep_freed_memory()  # as `stbench` runs (STBENCH_MALLOC)

    task = plugins.resolve_task(args.task)
    spec = plugins.get_dataset(task.dataset)
    test_set = spread_subset(open_split(spec, args.data_root, "test", task), args.clips)
    options = parse_overrides(args.metric_option)
    metric_sets = parse_metric_sets(args.metrics)
    print(f"{task.name}: {len(test_set)} test clips, batch {args.batch}, device {args.device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, malloc {malloc}; "
          f"stbench.evaluation.evaluate, {args.repeats} alternating passes (median, min..max)")
    models = {}
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        torch.manual_seed(0)
        plan = plan_run("tau" if name == "convnet" else name, task, args.profile)
        model = (ConvNet(task.t_in, task.t_out, task.shape[0]) if name == "convnet" else build_model(plan))
        models[name] = (plan, model.to(args.device))
    times = {}
    notes = {}
    with tempfile.TemporaryDirectory(prefix="stbench-overhead-") as scratch:
        for _ in range(args.repeats):
            for name, (plan, model) in models.items():
                for label, names in metric_sets.items():
                    metrics = build_metrics(names, spec, task, options)
                    result = evaluate(model, test_set, args.batch, metrics, spec, task, args.device)
                    written = write_outputs(plan, model, test_set, result, Path(scratch), args.device)
                    times.setdefault((name, label), []).append(
                        (result.inference_seconds, result.data_seconds, result.metric_seconds, written))
                    notes.update(result.unavailable)
    header = f"{'model':<10} {'params':>8}  {'metrics':<10} {'forward s':>9} {'data s':>7} {'metric s':>8} " \
             f"{'write s':>7}  {'overhead / forward':>18}  {'spread':>13}"
    print(header)
    print("-" * len(header))
    for (name, label), runs in times.items():
        ratios = [(d + m + w) / f for f, d, m, w in runs]
        median = lambda i: statistics.median(r[i] for r in runs)  # noqa: E731
        params = count_params(models[name][1]) / 1e6
        print(f"{name:<10} {params:>7.2f}M  {label:<10} {median(0):>9.2f} {median(1):>7.2f} {median(2):>8.2f} "
              f"{median(3):>7.2f}  {statistics.median(ratios):>18.1%}  {min(ratios):>5.1%}..{max(ratios):.1%}")
    for metric, reason in notes.items():
        print(f"note: {metric} not scored (its time is not in the table): {reason}")


if __name__ == "__main__":
    main()
