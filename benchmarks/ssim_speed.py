"""SSIM speed: stbench's SSIM kernels against the per-frame scikit-image loop, side by side.

Times, over the same frames and alternating in rounds (ABAB: the machine may be shared), scikit-image's
``structural_similarity`` frame by frame, the kernel stbench used before 2026-12 (kept here for the
comparison), stbench's eager kernel and its compiled kernel (STBENCH_SSIM=compiled; compile time apart), on
one thread as the SSIM metric runs them (``stbench.metrics.base.one_thread``), and the eager kernel on all of
torch's threads beside them where there are several (what one thread saves on a busy machine).
Prints each one's median time and spread over the rounds, its speed-up over scikit-image per round (median,
min..max) and the largest difference from scikit-image's values.

Usage: python benchmarks/ssim_speed.py [--clips 200] [--frames 10] [--size 64] [--channels 1] [--repeats 5]
       [--no-compiled]
"""
import argparse
import statistics
import time

import numpy as np
import torch
from skimage.metrics import structural_similarity

from stbench.metrics.base import one_thread
from stbench.metrics.pixel_scores import compiled_ssim, ssim_frames, ssim_kernel_used


def skimage_loop(pred, true, data_range):
    b, t = pred.shape[:2]
    out = np.empty((b, t))
    for i in range(b):
        for j in range(t):
            out[i, j] = structural_similarity(pred[i, j], true[i, j], data_range=data_range, channel_axis=0)
    return out


def _box_mean_before(x, k):
    c = x.cumsum(-1)
    c = torch.cat([c[..., k - 1:k], c[..., k:] - c[..., :-k]], dim=-1)
    c = c.cumsum(-2)
    c = torch.cat([c[..., k - 1:k, :], c[..., k:, :] - c[..., :-k, :]], dim=-2)
    return c / (k * k)


def ssim_before(pred, true, data_range, win_size=7, k1=0.01, k2=0.03, chunk=32):
    """stbench's kernel until 2026-12: five window maps by running sums, chunks of 32 frames, float64 inputs."""
    pred, true = pred.double(), true.double()  # what FrameMetric handed it
    b, t, c, h, w = pred.shape
    x_all, y_all = pred.reshape(b * t * c, h, w), true.reshape(b * t * c, h, w)
    n = win_size * win_size
    cov_norm = n / (n - 1)
    out = []
    for start in range(0, b * t * c, chunk):
        x, y = x_all[start:start + chunk], y_all[start:start + chunk]
        shift = y.mean(dim=(1, 2), keepdim=True)
        xs, ys = (x - shift).float(), (y - shift).float()
        mx, my, mxx, myy, mxy = _box_mean_before(torch.stack([xs, ys, xs * xs, ys * ys, xs * ys], dim=1),
                                                 win_size).unbind(1)
        vx, vy, vxy = cov_norm * (mxx - mx * mx), cov_norm * (myy - my * my), cov_norm * (mxy - mx * my)
        shift = shift.float()
        ux, uy = mx + shift, my + shift
        c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        out.append(s.double().mean(dim=(1, 2)))
    return torch.cat(out).reshape(b, t, c).mean(dim=2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-compiled", action="store_true", help="leave the compiled kernel out")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    shape = (args.clips, args.frames, args.channels, args.size, args.size)
    true = rng.random(shape)
    pred = np.clip(true + 0.1 * rng.standard_normal(shape), 0, 1)
    # as evaluation hands them over: float32 predictions and targets
    pred_t, true_t = torch.from_numpy(pred).float(), torch.from_numpy(true).float()
    frames = args.clips * args.frames
    def single(fn):
        def run():
            with one_thread():
                return fn()
        return run

    threads = torch.get_num_threads()
    contenders = {
        "skimage per-frame loop": lambda: skimage_loop(pred, true, 1.0),
        f"stbench before, {threads} thr": lambda: ssim_before(pred_t, true_t, 1.0).numpy(),
        "stbench eager": single(lambda: ssim_frames(pred_t, true_t, 1.0, kernel="eager").numpy()),
    }
    if threads > 1:
        contenders[f"stbench eager, {threads} thr"] = lambda: ssim_frames(pred_t, true_t, 1.0, kernel="eager").numpy()
    compile_note = ""
    if not args.no_compiled:
        start = time.perf_counter()
        found = compiled_ssim(7)
        ssim_frames(pred_t[:1], true_t[:1], 1.0, kernel="compiled")  # the benchmark's chunk shape
        compile_s = time.perf_counter() - start
        if isinstance(found, str):
            compile_note = f"compiled kernel unavailable: {found}"
        else:
            compile_note = f"compiled kernel: {compile_s:.1f} s to compile (once per process; inductor caches on disk)"
            contenders["stbench compiled"] = single(lambda: ssim_frames(pred_t, true_t, 1.0, kernel="compiled").numpy())
    times = {name: [] for name in contenders}
    results = {}
    for _ in range(args.repeats):
        for name, run in contenders.items():
            start = time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - start)
    reference = results["skimage per-frame loop"]
    print(f"frames: {frames} of {args.channels}x{args.size}x{args.size}, {args.repeats} alternating rounds, "
          f"{threads} torch threads (rows without 'thr': one thread, as the metric runs)")
    if compile_note:
        print(compile_note)
    print(f"{'':<26} {'median s':>9} {'min..max s':>15} {'frames/s':>9} {'speed-up (median, min..max)':>28} "
          f"{'max |diff|':>10}")
    for name, seconds in times.items():
        ratios = [ref / own for ref, own in zip(times["skimage per-frame loop"], seconds)]
        median = statistics.median(seconds)
        print(f"{name:<26} {median:>9.3f} {min(seconds):>7.3f}..{max(seconds):<7.3f} {frames / median:>9.0f} "
              f"{statistics.median(ratios):>14.1f}x ({min(ratios):.1f}..{max(ratios):.1f}) "
              f"{np.abs(results[name] - reference).max():>10.1e}")
    if "stbench compiled" in contenders:
        print(f"compiled kernel in use: {ssim_kernel_used('compiled')}")


if __name__ == "__main__":
    main()
