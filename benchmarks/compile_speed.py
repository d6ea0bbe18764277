"""torch.compile (``--compile on``) against eager, per model family, side by side.

    python benchmarks/compile_speed.py [--task mmnist-10-10] [--models simvp,tau,convlstm,predrnn]
                                       [--profile quick] [--batch 16] [--rounds 5]

Each model is built as ``stbench run`` builds it, copied, and the copy compiled by
``stbench.compiling.compile_model`` exactly as a run compiles it (the whole model, or the cells a recurrent
model names in ``compile_targets``); the compile time (inference, then training) is printed apart. Then a
training step (loss, backward, Adam step) and a no-grad forward of the eager and the compiled model are timed
alternately (ABAB) on the same batch and weights, and each round's eager / compiled ratio is printed (median,
min..max; above 1 the compiled model is faster), with the largest output difference and the number of
training steps after which the compile time is paid back (none where compiling does not win).
"""
import argparse
import copy
import statistics
import time

import torch

from stbench import allocator, plugins
from stbench.compiling import compile_model
from stbench.planning import build_model, plan_run
from stbench.tasks import parse_list


def _seconds(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mmnist-10-10")
    parser.add_argument("--models", default="simvp,tau,convlstm,predrnn")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    malloc = allocator.keep_freed_memory()
    task = plugins.resolve_task(args.task)
    print(f"{task.name}, {args.profile} configs, batch {args.batch}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, malloc {malloc}; {args.rounds} alternating rounds; "
          "ratio = eager s / compiled s (median, min..max)")
    header = (f"{'model':<10} {'family':<15} {'targets':<10} {'compile s (infer+train)':>23} "
              f"{'infer ratio':>22} {'train ratio':>22} {'max |diff|':>10} {'pays back after':>16}")
    print(header)
    print("-" * len(header))
    for name in parse_list(args.models):
        torch.manual_seed(0)
        plan = plan_run(name, task, args.profile)
        eager = build_model(plan)
        compiled = copy.deepcopy(eager)
        x = torch.rand(args.batch, task.t_in, *task.shape)
        y = torch.rand(args.batch, task.t_out, *task.shape)
        done = compile_model(compiled, "on", (x, y, task.t_out), train=True)
        if not done.used:
            print(f"{name:<10} {plan.model_spec.family:<15} {done.note}")
            continue
        optimizers = {id(m): torch.optim.Adam(m.parameters(), lr=1e-9) for m in (eager, compiled)}

        def infer(model):
            model.eval()
            with torch.no_grad():
                return model(x, task.t_out)

        def step(model):
            model.train()
            optimizer = optimizers[id(model)]
            optimizer.zero_grad(set_to_none=True)
            model.loss(x, y, 0).backward()
            optimizer.step()

        difference = (infer(eager) - infer(compiled)).abs().max().item()
        for model in (eager, compiled):  # warm-up: allocator, kernel choice, the optimizer's state
            step(model)
        times = {"infer": ([], []), "train": ([], [])}
        for _ in range(args.rounds):
            for kind, fn in (("infer", infer), ("train", step)):
                for index, model in enumerate((eager, compiled)):
                    times[kind][index].append(_seconds(lambda: fn(model)))
        ratios = {kind: [e / c for e, c in zip(*pair)] for kind, pair in times.items()}
        gain = statistics.median(times["train"][0]) - statistics.median(times["train"][1])
        payback = f"{sum(done.seconds.values()) / gain:,.0f} steps" if gain > 0 else "never"
        compile_text = f"{done.seconds['inference']:.1f} + {done.seconds['training']:.1f}"
        cells = ",".join(t or "(model)" for t in done.targets)
        cells = cells if len(cells) <= 10 else f"{len(done.targets)} cells"
        text = {kind: f"{statistics.median(r):.2f}x ({min(r):.2f}..{max(r):.2f})" for kind, r in ratios.items()}
        print(f"{name:<10} {plan.model_spec.family:<15} {cells:<10} {compile_text:>23} {text['infer']:>22} "
              f"{text['train']:>22} {difference:>10.1e} {payback:>16}")


if __name__ == "__main__":
    main()
