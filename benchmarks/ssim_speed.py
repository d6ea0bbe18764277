"""SSIM speed: stbench's vectorised torch SSIM against the per-frame scikit-image loop, side by side.

Prints the time of each over the same frames, the ratio, and the largest difference in value.
Usage: python benchmarks/ssim_speed.py [--clips 200] [--frames 10] [--size 64] [--channels 1] [--repeats 3]
"""
import argparse
import time

import numpy as np
import torch
from skimage.metrics import structural_similarity

from stbench.metrics.pixel import ssim_frames


def skimage_loop(pred, true, data_range):
    b, t = pred.shape[:2]
    out = np.empty((b, t))
    for i in range(b):
        for j in range(t):
            out[i, j] = structural_similarity(pred[i, j], true[i, j], data_range=data_range, channel_axis=0)
    return out


def best_of(repeats, fn):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    shape = (args.clips, args.frames, args.channels, args.size, args.size)
    true = rng.random(shape)
    pred = np.clip(true + 0.1 * rng.standard_normal(shape), 0, 1)
    pred_t, true_t = torch.from_numpy(pred), torch.from_numpy(true)
    ref_s, ref = best_of(args.repeats, lambda: skimage_loop(pred, true, 1.0))
    ours_s, ours = best_of(args.repeats, lambda: ssim_frames(pred_t, true_t, 1.0).numpy())
    frames = args.clips * args.frames
    print(f"frames: {frames} of {args.channels}x{args.size}x{args.size}, best of {args.repeats}, "
          f"{torch.get_num_threads()} torch threads")
    print(f"skimage per-frame loop : {ref_s:8.3f} s ({frames / ref_s:9.0f} frames/s)")
    print(f"stbench torch SSIM     : {ours_s:8.3f} s ({frames / ours_s:9.0f} frames/s)")
    print(f"speed-up               : {ref_s / ours_s:8.1f}x")
    print(f"max |difference|      : {np.abs(ours - ref).max():.2e}")


if __name__ == "__main__":
    main()
