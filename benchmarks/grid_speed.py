"""Grid speed: a models x tasks x seeds grid through the local pool (N workers) against the sequential command.

Every side runs the same runs into its own output folder on this machine, one side after the other:
- sequential: `python -m stbench run --models ... --tasks ... --seed S` once per seed (one process
  trains every (model, task) in turn) with all the cores as torch threads, as a user types it, and
  again with one thread (to tell the pool's parallelism from the effect of the thread count);
- pool: `stbench.launch.run_grid(..., launcher="local", jobs=N)`: one fresh process per run, N at a
  time, each with cores // N torch threads.
With --rounds R the sides take turns R times (machine load drifts). Prints each total, the ratio to
the sequential command and the threads per worker, and how far the metrics differ (a different
thread count sums in another order; equal thread counts give equal metrics). The Moving MNIST test
set is prepared before the clocks start (the first run would generate it).

Usage: python benchmarks/grid_speed.py [--models persistence,simvp] [--tasks mmnist-10-10,mmnist-5-5]
       [--seeds 0,1] [--profile smoke] [--epochs 2] [--set train_samples=128 ...] [--jobs 2[,4]]
       [--rounds 1] [--data-root DIR] [--keep DIR]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stbench import launch, plugins
from stbench.data import default_data_root

DEFAULT_SETS = ["train_samples=128", "test_samples=64"]


def split(text):
    return [part.strip() for part in text.split(",") if part.strip()]


def metrics_of(out):
    found = {}
    for path in Path(out, "runs").glob("*/*/record.json"):
        record = json.loads(path.read_text())
        if record.get("status") == "ok":
            found[(record["model"], record["task"], record["seed"])] = record["metrics"]
    return found


def largest_difference(a, b):
    """The largest relative difference between two runs' metrics, over every run both hold."""
    worst = 0.0
    for key in set(a) & set(b):
        for name, value in a[key].items():
            other = b[key].get(name)
            if isinstance(value, float) and isinstance(other, float):
                worst = max(worst, abs(value - other) / max(abs(value), 1e-12))
    return worst


def prepare_data(tasks, root):
    """Open each task's test split once, so a generated test set exists before timing starts."""
    for text in tasks:
        task = plugins.resolve_task(text)
        plugins.get_dataset(task.dataset).open(str(root), "test", task.t_in, task.t_out)


def common_args(args, out):
    extra = ["--profile", args.profile, "--out", str(out), "--data-root", str(args.data_root)]
    if args.epochs is not None:
        extra += ["--epochs", str(args.epochs)]
    for item in args.set:
        extra += ["--set", item]
    return extra


def run_sequential(args, out, threads):
    env = {**os.environ, **launch.thread_environment(threads)}
    start = time.perf_counter()
    for seed in split(args.seeds):
        command = [sys.executable, "-m", "stbench", "run", "--models", args.models, "--tasks", args.tasks,
                   "--seed", seed, *common_args(args, out)]
        done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            sys.exit(f"grid_speed: the sequential command failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def run_pool(args, out, jobs):
    argvs = [["run", "--models", model, "--tasks", task, "--seed", seed, *common_args(args, out)]
             for seed in split(args.seeds) for task in split(args.tasks) for model in split(args.models)]
    start = time.perf_counter()
    outcomes = launch.run_grid(argvs, launcher="local", jobs=jobs, out_dir=out, progress=None)
    seconds = time.perf_counter() - start
    failed = [o for o in outcomes if o.state != "finished"]
    if failed:
        sys.exit(f"grid_speed: {len(failed)} runs of the pool failed, e.g. {failed[0].detail}")
    return seconds, len(argvs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="persistence,simvp")
    parser.add_argument("--tasks", default="mmnist-10-10,mmnist-5-5")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--set", action="append", default=None, metavar="KEY=VALUE")
    parser.add_argument("--jobs", default="2", help="comma-separated worker counts to compare")
    parser.add_argument("--data-root", default=default_data_root())
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--keep", help="keep the output folders under this folder (default: a temp folder)")
    args = parser.parse_args()
    args.set = DEFAULT_SETS if args.set is None else args.set
    cores = launch.available_cores()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="stbench-grid-speed-"))
    prepare_data(split(args.tasks), args.data_root)
    runs = len(split(args.models)) * len(split(args.tasks)) * len(split(args.seeds))
    seeds = len(split(args.seeds))
    print(f"grid: {args.models} x {args.tasks} x seeds {args.seeds} = {runs} runs, profile {args.profile}, "
          f"epochs {args.epochs}, {' '.join(args.set)}; {cores} cores")
    try:
        for round_ in range(1, args.rounds + 1):
            sequential, reference = None, None
            for threads in sorted({cores, 1}, reverse=True):
                out = work / f"round{round_}-sequential-{threads}"
                seconds = run_sequential(args, out, threads)
                if sequential is None:
                    sequential, reference = seconds, metrics_of(out)
                label = f"sequential command, {threads} thread{'s' if threads > 1 else ''}"
                print(f"round {round_}  {label:<34} {seconds:8.1f} s   ({seeds} process(es))   "
                      f"sequential / this = {sequential / seconds:.2f}x   largest relative metric difference "
                      f"{largest_difference(reference, metrics_of(out)):.2g}")
            for jobs in [int(j) for j in split(args.jobs)]:
                out = work / f"round{round_}-pool-{jobs}"
                pooled, count = run_pool(args, out, jobs)
                threads = launch.threads_per_worker(jobs, cores)
                label = f"local pool, {jobs} workers x {threads} thread{'s' if threads > 1 else ''}"
                print(f"round {round_}  {label:<34} {pooled:8.1f} s   ({count} processes)   sequential / this = "
                      f"{sequential / pooled:.2f}x   largest relative metric difference "
                      f"{largest_difference(reference, metrics_of(out)):.2g}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
