"""Evaluation overhead: time spent loading test data and scoring it, as a fraction of model forward time.

Streams a test set through `stbench.engine.evaluate` (the loop every run uses) once per model and metric
set and prints (data s + metric s) / forward s side by side. The goal is <= 10% for the pixel metrics.
Untrained weights: only the times mean something here, never the scores.

Usage: python benchmarks/eval_overhead.py [--task mmnist-10-10] [--clips 500] [--batch 16]
       [--models convnet,simvp] [--profile paper] [--metrics pixel=mse,mae,ssim,psnr;all=...]
       [--device cpu] [--data-root ./data] [--metric-option KEY=VALUE ...]
"""
import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader

from stbench import STModel, allocator, plugins
from stbench.config import parse_overrides
from stbench.engine import build_metrics, build_model, evaluate, open_split, plan_run, spread_subset
from stbench.models import count_params

METRIC_SETS = "pixel=mse,mae,ssim,psnr;pixel+perceptual=mse,mae,ssim,psnr,lpips,fvd"


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


def build(name, task, profile):
    if name == "convnet":
        return ConvNet(task.t_in, task.t_out, task.shape[0])
    return build_model(plan_run(name, task, profile))


def parse_metric_sets(text):
    sets = {}
    for item in text.split(";"):
        label, _, names = item.partition("=")
        sets[label.strip()] = [n.strip() for n in names.split(",") if n.strip()]
    return sets


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mmnist-10-10")
    parser.add_argument("--clips", type=int, default=500, help="test clips, evenly spread over the test set")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--models", default="convnet", help="'convnet' (defined here) and/or registered models")
    parser.add_argument("--profile", default="paper", help="hyper-parameters of registered models")
    parser.add_argument("--metrics", default=METRIC_SETS, help="label=name,name;label=... (default: %(default)s)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data-root", default="./data")
    parser.add_argument("--metric-option", action="append", default=[], help="KEY=VALUE, e.g. fvd_i3d=PATH")
    args = parser.parse_args()
    malloc = allocator.keep_freed_memory()  # as `stbench` runs (STBENCH_MALLOC)

    task = plugins.resolve_task(args.task)
    spec = plugins.get_dataset(task.dataset)
    test_set = spread_subset(open_split(spec, args.data_root, "test", task), args.clips)
    loader = DataLoader(test_set, batch_size=args.batch, shuffle=False, num_workers=0)
    options = parse_overrides(args.metric_option)
    metric_sets = parse_metric_sets(args.metrics)
    print(f"{task.name}: {len(test_set)} test clips, batch {args.batch}, device {args.device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, malloc {malloc}; stbench.engine.evaluate")
    header = f"{'model':<10} {'params':>8}  {'metrics':<18} {'forward s':>9} {'data s':>7} {'metric s':>8}  " \
             f"{'(data+metric)/forward':>21}"
    print(header)
    print("-" * len(header))
    notes = {}
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        torch.manual_seed(0)
        model = build(name, task, args.profile).to(args.device)
        for label, names in metric_sets.items():
            metrics = build_metrics(names, spec, task, options)
            result = evaluate(model, loader, metrics, spec, task, args.device)
            overhead = (result.data_seconds + result.metric_seconds) / result.inference_seconds
            print(f"{name:<10} {count_params(model) / 1e6:>7.2f}M  {label:<18} {result.inference_seconds:>9.2f} "
                  f"{result.data_seconds:>7.2f} {result.metric_seconds:>8.2f}  {overhead:>20.1%}")
            notes.update(result.unavailable)
    for metric, reason in notes.items():
        print(f"note: {metric} not scored (its time is not in the table): {reason}")


if __name__ == "__main__":
    main()
