"""Startup time of the CLI's cheap commands: median wall time of several runs each, optionally vs. a baseline.

Usage: python benchmarks/cli_startup.py [--runs N] [--baseline /path/to/other/python] [--json FILE]

Each command runs in a fresh process (``python -m stbench ...``) so import cost is measured as a user
feels it, from an empty folder so that each interpreter imports its own installed stbench (``-m`` would
otherwise pick up a checkout in the current folder). With ``--baseline`` the same commands also run under another interpreter (e.g. the venv of
an older checkout) and the table shows both medians and their ratio. Run it with OMP_NUM_THREADS=1 on
a quiet machine; the numbers are wall-clock seconds.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = (
    ("--help",),
    ("list", "models"),
    ("list", "datasets"),
    ("list", "metrics"),
    ("list", "tasks"),
    ("plugins",),
)


def median_seconds(python, command, runs):
    """Median wall time of ``python -m stbench COMMAND`` over ``runs`` fresh processes."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    times = []
    with tempfile.TemporaryDirectory() as empty:
        for _ in range(runs):
            start = time.perf_counter()
            done = subprocess.run([python, "-m", "stbench", *command], env=env, capture_output=True, text=True,
                                  cwd=empty)
            times.append(time.perf_counter() - start)
            if done.returncode != 0:
                raise SystemExit(f"{python} -m stbench {' '.join(command)} failed ({done.returncode}): "
                                 f"{done.stderr.strip().splitlines()[-1:]}")
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per command (default 5)")
    parser.add_argument("--python", default=sys.executable, help="interpreter to measure (default: this one)")
    parser.add_argument("--baseline", help="another interpreter to measure side by side (e.g. an older venv)")
    parser.add_argument("--json", help="also write the medians to this JSON file")
    args = parser.parse_args(argv)

    rows = []
    for command in COMMANDS:
        now = median_seconds(args.python, command, args.runs)
        before = median_seconds(args.baseline, command, args.runs) if args.baseline else None
        rows.append({"command": "stbench " + " ".join(command), "seconds": now, "baseline_seconds": before})

    print(f"median of {args.runs} runs, seconds")
    header = f"{'command':<24} {'now':>7}"
    print(header + (f" {'before':>7} {'speed-up':>8}" if args.baseline else ""))
    for row in rows:
        line = f"{row['command']:<24} {row['seconds']:>7.3f}"
        if row["baseline_seconds"] is not None:
            line += f" {row['baseline_seconds']:>7.3f} {row['baseline_seconds'] / row['seconds']:>7.1f}x"
        print(line)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
