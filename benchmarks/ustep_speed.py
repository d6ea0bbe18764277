"""Inference time of USTEP, TAU and PredRNN++ side by side on this machine (the paper's Table IX, CPU rows).

    python benchmarks/ustep_speed.py [--task kth-10-40] [--models ustep,tau,predrnnpp] [--repeats 3] [--batch 1]

Every model is built through the plugin registry at its ``paper`` settings for the task's dataset,
and timed on one ``[batch, T_in, C, H, W]`` input with no_grad after one warm-up forward (skipped for a
model whose first forward already takes longer than ``--long`` seconds: its own allocation cost is
then negligible). The figures are wall-clock seconds per test sequence; the ratios are what Table IX
reports (CPU: USTEP 2968 s, TAU 2510 s, PredRNN++ 88422 s per test set, i.e. USTEP ~29.8x faster
than PredRNN++ and ~1.18x TAU's time). A model that is not installed is reported and skipped.
"""
import argparse
import os
import platform
import statistics
import sys
import time

import torch

from stbench import allocator, plugins
from stbench.planning import build_model, plan_run
from stbench.errors import UserError
from stbench.models import count_params
from stbench.tasks import parse_list

PAPER_CPU_SECONDS = {"tau": 2510.0, "predrnnpp": 88422.0, "ustep": 2968.0}  # Table IX, per KTH test set


@torch.no_grad()
def time_inference(model, task, repeats, long_seconds, batch=1):
    c, h, w = task.shape
    x = torch.rand(batch, task.t_in, c, h, w, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    out = model(x, task.t_out)
    first = time.perf_counter() - start
    if tuple(out.shape) != (batch, task.t_out, c, h, w):
        raise RuntimeError(f"unexpected output shape {tuple(out.shape)}")
    times = [] if first < long_seconds else [first]  # the first run was the warm-up unless it was long
    while len(times) < (repeats if first < long_seconds else 1):
        start = time.perf_counter()
        model(x, task.t_out)
        times.append(time.perf_counter() - start)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="kth-10-40")
    parser.add_argument("--models", default="ustep,tau,predrnnpp")
    parser.add_argument("--repeats", type=int, default=3, help="timed forwards per model (after a warm-up)")
    parser.add_argument("--long", type=float, default=60.0,
                        help="a model whose first forward takes longer than this many seconds is timed once")
    parser.add_argument("--batch", type=int, default=1,
                        help="sequences per forward (the paper times whole test sets, i.e. batched)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--malloc", choices=allocator.MODES, default=None,
                        help="glibc malloc mode (default: STBENCH_MALLOC or keep, as stbench runs)")
    args = parser.parse_args(argv)
    try:
        malloc = allocator.keep_freed_memory(args.malloc)  # as `stbench` does before any work
    except UserError as error:
        sys.exit(f"ustep_speed: {error}")
    if args.threads:
        torch.set_num_threads(args.threads)

    try:
        task = plugins.resolve_task(args.task)
    except UserError as error:
        sys.exit(f"ustep_speed: {error}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"task {task.name} {task.shape}, batch {args.batch}, no_grad, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, malloc {malloc}, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
          f"load average {load:.1f} at start")

    seconds = {}
    for name in parse_list(args.models):
        try:
            torch.manual_seed(0)
            model = build_model(plan_run(name, task, "paper")).eval()  # as `stbench run` builds it
        except UserError as error:
            print(f"{name:10s} not available: {error}")
            continue
        times = [t / args.batch for t in time_inference(model, task, args.repeats, args.long, args.batch)]
        seconds[name] = statistics.median(times)
        print(f"{name:10s} {count_params(model) / 1e6:6.1f}M params  {seconds[name]:8.2f} s per sequence "
              f"(median of {len(times)}: {', '.join(f'{t:.2f}' for t in times)})", flush=True)
        del model

    print()
    if "ustep" in seconds and "predrnnpp" in seconds:
        paper = PAPER_CPU_SECONDS["predrnnpp"] / PAPER_CPU_SECONDS["ustep"]
        print(f"predrnnpp / ustep = {seconds['predrnnpp'] / seconds['ustep']:.1f}x  (paper CPU: {paper:.1f}x; "
              f"goal >= 20x)")
    elif "ustep" in seconds and "predrnnpp" in parse_list(args.models):
        print("predrnnpp is not registered (install plugins/stbench-predrnn): no PredRNN++ ratio")
    if "ustep" in seconds and "tau" in seconds:
        paper = PAPER_CPU_SECONDS["ustep"] / PAPER_CPU_SECONDS["tau"]
        print(f"ustep / tau      = {seconds['ustep'] / seconds['tau']:.2f}x  (paper CPU: {paper:.2f}x; goal <= 1.3x)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.1f} at the end (a shared CPU slows every model, not always equally)")


if __name__ == "__main__":
    main()
