"""Roofline: how close each model's training step and inference come to this CPU's measured peak.

    python benchmarks/roofline.py [--models all|a,b] [--profile quick] [--task mmnist-10-10]
                                  [--batch 16] [--repeats 2] [--top 3] [--markdown]

The peak is measured in the same run, first: the best of a large fp32 matrix product (2048^3) and a large
fp32 3x3 convolution (batch 16, 128 -> 128 channels, 64 x 64), in multiply-accumulates per second (GMAC/s),
with the threads torch uses here. Then for every model (built as ``stbench run`` builds it, same weights in
every measurement): the MACs of one inference rollout at batch 1 (``stbench.profiling.count_macs``, what the
boards show), the median time of a no-grad forward at ``--batch`` and of a training step (the model's own
loss, backward, one optimizer step) after one warm-up, and from them the achieved GMAC/s and its fraction of
the peak. A training step counts 3 x the forward MACs of the model's own loss (see :func:`training_macs`), so
a diffusion model's training (one denoiser pass) is not charged its sampling chain. ``--top`` names the operators that take the most self time in one
inference forward (torch.profiler), where a model loses time.

This machine is shared and noisy: read the fractions as a guide; the peak is re-measured at the end and both
peaks are printed, so a load change during the run shows.
"""
import argparse

import torch
from timing import timed

from stbench import allocator, plugins
from stbench.planning import build_model, plan_run
from stbench.profiling import count_macs
from stbench.tasks import parse_list
from stbench.training import make_optimizers


def peak_gmacs(repeats=3):
    """(matmul GMAC/s, conv GMAC/s) of large fp32 kernels on this CPU, now."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(2048, 2048, generator=gen), torch.rand(2048, 2048, generator=gen)
    matmul = 2048 ** 3 / timed(lambda: a @ b, repeats) / 1e9
    x = torch.rand(16, 128, 64, 64, generator=gen).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(128, 128, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
    with torch.no_grad():
        seconds = timed(lambda: conv(x), repeats)
    return matmul, 16 * 128 * 128 * 9 * 64 * 64 / seconds / 1e9


def training_macs(model, x, y):
    """Multiply-accumulates of one training step at this batch: 3 x the forward MACs of the model's own loss
    (counted by torch's FlopCounterMode, 2 FLOPs per MAC), backward costing twice the forward (gradients for
    inputs and for weights). Counted on the loss, not on the inference rollout, so a diffusion model's training
    (one denoiser pass) is not charged its sampling chain, and teacher forcing, discriminators and posteriors
    count as they run. The backward is not counted directly: FlopCounterMode's convolution-backward formula
    ignores groups, which charges depthwise convolutions (TAU, SimVPv2) tens of times their cost."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.loss(x, y, 0)
    return 3 * counter.get_total_flops() / 2


def top_operators(model, x, t_out, top):
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        model(x, t_out)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return ", ".join(f"{e.key} {100 * e.self_cpu_time_total / total:.0f}%" for e in events[:top])


def measure(name, task, profile, batch, repeats, top):
    plan = plan_run(name, task, profile)
    torch.manual_seed(0)
    model = build_model(plan)
    macs = count_macs(model, plan.parts[0].task)
    c, h, w = plan.parts[0].task.shape
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, task.t_in, c, h, w, generator=gen)
    y = torch.rand(batch, task.t_out, c, h, w, generator=gen)
    params = sum(p.numel() for p in model.parameters())
    row = {"model": name, "params_m": params / 1e6, "gmacs": macs / 1e9}
    model.eval()
    with torch.no_grad():
        row["infer_s"] = timed(lambda: model(x, task.t_out), repeats)
    row["infer_gmacs_s"] = macs * batch / row["infer_s"] / 1e9
    model.train()
    trainable = any(p.requires_grad for p in model.parameters())
    if trainable and not getattr(model, "update_stages", None):
        optimizers = make_optimizers(model, plan.train)

        def step():
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            model.loss(x, y, 0).backward()
            for optimizer in optimizers:
                optimizer.step()

        row["train_s"] = timed(step, repeats)
        row["train_gmacs_s"] = training_macs(model, x, y) / row["train_s"] / 1e9
    model.eval()
    row["top"] = top_operators(model, x, task.t_out, top) if top else ""
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="all")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--task", default="mmnist-10-10")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--top", type=int, default=3)
    args = parser.parse_args(argv)
    malloc = allocator.keep_freed_memory()
    task = plugins.resolve_task(args.task)
    names = sorted(plugins.models()) if args.models == "all" else parse_list(args.models)
    names = [n for n in names if plugins.get_model(n).family != "baseline"]
    first = peak_gmacs()
    peak = max(first)
    print(f"{task.name}, profile {args.profile}, batch {args.batch}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, malloc {malloc}; median of {args.repeats} after a warm-up")
    print(f"peak (start): matmul {first[0]:.1f} GMAC/s, conv {first[1]:.1f} GMAC/s; peak = {peak:.1f} GMAC/s")
    print()
    print("| model | params (M) | GMAC (batch 1) | inference s | GMAC/s | % peak | train step s | GMAC/s | % peak "
          "| most self time (inference) |")
    print("|:--|--:|--:|--:|--:|--:|--:|--:|--:|:--|")
    for name in names:
        try:
            row = measure(name, task, args.profile, args.batch, args.repeats, args.top)
        except Exception as error:  # a model that cannot be built or run here: say so, go on
            print(f"| {name} | {type(error).__name__}: {str(error).splitlines()[0][:80]} | | | | | | | | |", flush=True)
            continue
        train = (f"{row['train_s']:.3f} | {row['train_gmacs_s']:.1f} | {100 * row['train_gmacs_s'] / peak:.0f}"
                 if "train_s" in row else "– | – | –")
        print(f"| {name} | {row['params_m']:.2f} | {row['gmacs']:.3f} | {row['infer_s']:.3f} | "
              f"{row['infer_gmacs_s']:.1f} | {100 * row['infer_gmacs_s'] / peak:.0f} | {train} | {row['top']} |",
              flush=True)
    last = peak_gmacs()
    print()
    print(f"peak (end): matmul {last[0]:.1f} GMAC/s, conv {last[1]:.1f} GMAC/s")


if __name__ == "__main__":
    main()
