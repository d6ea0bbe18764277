"""Activation layout on CPU: channels-last (stbench's default) against NCHW, side by side.

    python benchmarks/cpu_layout.py [--task mmnist-10-10] [--models simvp,tau,ustep] [--profile quick]
                                    [--batch 16] [--repeats 3]

The SimVP-family models and USTEP put their activations in ``stbench_simvp.codec.MEMORY_FORMAT``;
this script builds each model once, then times one training step (forward + loss + backward) and
one no-grad forward with that layout set to NCHW and to channels-last, alternating, and prints
the ratios. The weights are the same in both runs; only the memory layout (and with it the
convolution kernels PyTorch picks, and ``Pointwise``'s matrix-product path) changes.
"""
import argparse
import statistics
import time

import torch

import stbench_simvp.codec as codec
from stbench import plugins
from stbench.engine import build_model, plan_run
from stbench.tasks import parse_list

LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def timed(fn, repeats):
    fn()  # warm-up (allocator, kernel choice)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mmnist-10-10")
    parser.add_argument("--models", default="simvp,tau,ustep")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    task = plugins.resolve_task(args.task)
    c, h, w = task.shape
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, task.t_in, c, h, w, generator=gen)
    y = torch.rand(args.batch, task.t_out, c, h, w, generator=gen)
    print(f"{task.name}, profile {args.profile}, batch {args.batch}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; median of {args.repeats} after a warm-up")
    print(f"{'model':<10} {'train step NCHW':>16} {'channels-last':>14} {'speed-up':>9}   "
          f"{'forward NCHW':>13} {'channels-last':>14} {'speed-up':>9}")
    try:
        for name in parse_list(args.models):
            torch.manual_seed(0)
            model = build_model(plan_run(name, task, args.profile))  # as `stbench run` builds it
            seconds = {}
            for layout, fmt in LAYOUTS.items():
                codec.MEMORY_FORMAT = fmt

                def step():
                    model.train()
                    model.zero_grad(set_to_none=True)
                    model.loss(x, y, 0).backward()

                def forward():
                    model.eval()
                    with torch.no_grad():
                        model(x, task.t_out)

                seconds[layout] = (timed(step, args.repeats), timed(forward, args.repeats))
            (tn, fn), (tc, fc) = seconds["nchw"], seconds["channels_last"]
            print(f"{name:<10} {tn:>15.3f}s {tc:>13.3f}s {tn / tc:>8.2f}x   {fn:>12.3f}s {fc:>13.3f}s "
                  f"{fn / fc:>8.2f}x", flush=True)
    finally:
        codec.MEMORY_FORMAT = torch.channels_last


if __name__ == "__main__":
    main()
