"""Loader workers: what DataLoader workers (0, 1, 2, ...) do for an epoch of a JPEG dataset on this CPU.

Writes a KTH-layout fixture into a temp folder (`kth/<action>/personNN_<action>_dN_uncomp/image_NNNN.jpg`,
160x120 grey JPEG frames like the real videos: a textured background and a figure moving across it),
opens its training split through the kth dataset plugin (`stbench.plugins.get_dataset("kth").open`) and
times one epoch per worker count: decode, resize to 128x128 and batch every clip. Two consumers:
`load` only iterates the batches; `train` also runs a small convolutional training step per batch in the
main process, which then competes with the workers for the cores. Each figure is the fastest of
--repeats epochs, after one untimed warm-up epoch; workers start afresh every epoch
(persistent_workers=False: the cost of starting them is in the figure).

Usage: python benchmarks/loader_workers.py [--workers 0,1,2] [--task kth-10-20] [--persons 2]
       [--frames 60] [--batch 16] [--repeats 2] [--consumers load,train] [--keep DIR]
"""
import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from stbench import launch, plugins

ACTIONS = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
WIDTH, HEIGHT = 160, 120  # KTH's frame size


def write_kth_fixture(root, persons, frames, scenarios=4, seed=0):
    """Training persons 1..persons (and one test person) x 6 actions x scenarios, ``frames`` JPEGs each."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    count = 0
    for person in list(range(1, persons + 1)) + [17]:
        for action in ACTIONS:
            for scenario in range(1, scenarios + 1):
                folder = Path(root, "kth", action, f"person{person:02d}_{action}_d{scenario}_uncomp")
                folder.mkdir(parents=True, exist_ok=True)
                background = 110 + 40 * np.sin(xx / rng.uniform(8, 20)) * np.cos(yy / rng.uniform(8, 20))
                background += rng.normal(0, 6, size=(HEIGHT, WIDTH))
                start, speed = rng.uniform(10, 40), rng.uniform(0.5, 2.0)
                for frame in range(frames):
                    image = background + rng.normal(0, 3, size=(HEIGHT, WIDTH))
                    centre = (start + speed * frame) % (WIDTH - 20) + 10
                    figure = ((xx - centre) / 8) ** 2 + ((yy - 60) / 30) ** 2 < 1
                    image[figure] = 40
                    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), mode="L").save(
                        folder / f"image_{frame + 1:04d}.jpg", quality=75)
                    count += 1
    return count


class TrainStep:
    """A small SimVP-like step (frames on channels, four 3x3 convolutions, MSE, Adam) on each batch."""

    def __init__(self, t_in, t_out, width=32):
        self.net = nn.Sequential(nn.Conv2d(t_in, width, 3, padding=1, stride=2), nn.GELU(),
                                 nn.Conv2d(width, width, 3, padding=1), nn.GELU(),
                                 nn.Conv2d(width, width, 3, padding=1), nn.GELU(),
                                 nn.ConvTranspose2d(width, t_out, 4, stride=2, padding=1))
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=1e-3)

    def __call__(self, x, y):
        b, t, c, h, w = x.shape
        loss = nn.functional.mse_loss(self.net(x.reshape(b, t * c, h, w)), y.reshape(b, -1, h, w))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()


def epoch_seconds(dataset, workers, batch, consumer, seed):
    order = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, generator=order, num_workers=workers,
                        drop_last=False, persistent_workers=False)
    start = time.perf_counter()
    clips = 0
    for x, y in loader:
        if consumer is not None:
            consumer(x, y)
        clips += x.shape[0]
    return time.perf_counter() - start, clips


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--task", default="kth-10-20")
    parser.add_argument("--persons", type=int, default=2, help="training persons in the fixture (KTH has 16)")
    parser.add_argument("--frames", type=int, default=60, help="frames per video (KTH's are 300-1000)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--consumers", default="load,train")
    parser.add_argument("--keep", help="write the fixture here and keep it (default: a temp folder)")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    cores = launch.available_cores()
    torch.set_num_threads(cores)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="stbench-loader-"))
    try:
        written = write_kth_fixture(root, args.persons, args.frames)
        task = plugins.resolve_task(args.task)
        dataset = plugins.get_dataset("kth").open(str(root), "train", task.t_in, task.t_out)
        jpegs = len(dataset) * task.length
        print(f"fixture: {written} JPEG frames ({WIDTH}x{HEIGHT}) under {root}; {task.name} train: {len(dataset)} "
              f"clips = {jpegs} frame decodes per epoch; batch {args.batch}; {cores} cores, main process "
              f"{torch.get_num_threads()} torch threads; best of {args.repeats}")
        epoch_seconds(dataset, 0, args.batch, None, 0)  # untimed: first decodes, page cache, lazy imports
        for consumer_name in args.consumers.split(","):
            consumer = TrainStep(task.t_in, task.t_out) if consumer_name == "train" else None
            baseline = None
            for count in workers:
                best = min(epoch_seconds(dataset, count, args.batch, consumer, seed)[0]
                           for seed in range(args.repeats))
                baseline = baseline if baseline is not None else best
                print(f"{consumer_name:<6} workers {count}: epoch {best:7.2f} s  {jpegs / best:8.0f} frames/s  "
                      f"vs workers {workers[0]}: {baseline / best:.2f}x")
            if 0 in workers and cores > 1:
                # Workers decode with one torch thread each (DataLoader's rule); the same in-process.
                torch.set_num_threads(1)
                best = min(epoch_seconds(dataset, 0, args.batch, consumer, seed)[0] for seed in range(args.repeats))
                torch.set_num_threads(cores)
                print(f"{consumer_name:<6} workers 0, main process at 1 torch thread: epoch {best:7.2f} s  "
                      f"{jpegs / best:8.0f} frames/s  vs workers {workers[0]}: {baseline / best:.2f}x")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
