"""A tiny BAIR in PredBench's layout (.npy video arrays), for tests: core's dataset contract test and this plugin's."""
from pathlib import Path

import numpy as np

from stbench import SampleData
from stbench_data_common.testing import frames, sample_of


def videos(count, length=30, size=64, seed=0):
    """``count`` uint8 videos ``[N, T, H, W, 3]`` of smooth moving structure."""
    return np.stack([np.stack(frames(length, size, size, seed=seed + n)) for n in range(count)])


def make_sample(root) -> SampleData:
    """bair/train.npy (6 videos) and bair/test.npy (4, seed 10) under ``root``."""
    folder = Path(root) / "bair"
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "train.npy", videos(6))
    np.save(folder / "test.npy", videos(4, seed=10))
    return sample_of("bair-2-10", {"train": 6, "test": 4}, (3, 64, 64))
