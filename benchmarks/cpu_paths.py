"""CPU speed paths of the SimVP family and USTEP, each against its alternative, side by side.

    python benchmarks/cpu_paths.py [--compare layout|pointwise] [--task mmnist-10-10]
                                   [--models simvp,tau,ustep] [--profile quick] [--batch 16] [--repeats 3]

``layout``: activations in ``stbench_simvp.codec.MEMORY_FORMAT``, NCHW against channels-last
(stbench's default; it changes the convolution kernels PyTorch picks).
``pointwise``: ``stbench_simvp.Pointwise`` (every 1x1 convolution of the translators and USTEP) and
``stbench_simvp.Dense`` (the Uniformer and MLP-Mixer linear layers) as matrix products (MKL) against
oneDNN's 1x1 convolution; stbench picks one per machine
(``stbench_simvp.translators.default_pointwise_backend``, ``STBENCH_POINTWISE`` overrides it).

Each model is built once, as ``stbench run`` builds it; then one training step (forward + loss +
backward) and one no-grad forward are timed with the two settings, alternating, and the ratios
printed. The weights are the same in both; only the path changes. malloc runs as stbench runs it
(``STBENCH_MALLOC``).
"""
import argparse

import torch
from timing import timed

import stbench_simvp.codec as codec
from stbench import allocator, plugins
from stbench.planning import build_model, plan_run
from stbench.tasks import parse_list
from stbench_simvp import Dense, Pointwise

# setting -> (first variant, second variant); each variant is (label, function applying it to a model)
COMPARISONS = {
    "layout": (("NCHW", lambda model: setattr(codec, "MEMORY_FORMAT", torch.contiguous_format)),
               ("channels-last", lambda model: setattr(codec, "MEMORY_FORMAT", torch.channels_last))),
    "pointwise": (("matmul", lambda model: _pointwise(model, "matmul")),
                  ("conv", lambda model: _pointwise(model, "conv"))),
}


def _pointwise(model, backend):
    for module in model.modules():
        if isinstance(module, (Pointwise, Dense)):
            module.backend = backend


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", choices=sorted(COMPARISONS), default="layout")
    parser.add_argument("--task", default="mmnist-10-10")
    parser.add_argument("--models", default="simvp,tau,ustep")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    malloc = allocator.keep_freed_memory()

    task = plugins.resolve_task(args.task)
    c, h, w = task.shape
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, task.t_in, c, h, w, generator=gen)
    y = torch.rand(args.batch, task.t_out, c, h, w, generator=gen)
    (label_a, set_a), (label_b, set_b) = COMPARISONS[args.compare]
    print(f"{task.name}, profile {args.profile}, batch {args.batch}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, malloc {malloc}; median of {args.repeats} after a warm-up; "
          f"speed-up = {label_a} time / {label_b} time")
    print(f"{'model':<16} {'step ' + label_a:>18} {label_b:>14} {'speed-up':>9}   "
          f"{'forward ' + label_a:>18} {label_b:>14} {'speed-up':>9}")
    try:
        for name in parse_list(args.models):
            torch.manual_seed(0)
            model = build_model(plan_run(name, task, args.profile))  # as `stbench run` builds it
            seconds = []
            for apply in (set_a, set_b):
                apply(model)

                def step():
                    model.train()
                    model.zero_grad(set_to_none=True)
                    model.loss(x, y, 0).backward()

                def forward():
                    model.eval()
                    with torch.no_grad():
                        model(x, task.t_out)

                seconds.append((timed(step, args.repeats), timed(forward, args.repeats)))
            (ta, fa), (tb, fb) = seconds
            print(f"{name:<16} {ta:>17.3f}s {tb:>13.3f}s {ta / tb:>8.2f}x   {fa:>17.3f}s {fb:>13.3f}s "
                  f"{fa / fb:>8.2f}x", flush=True)
    finally:
        codec.MEMORY_FORMAT = torch.channels_last


if __name__ == "__main__":
    main()
