"""A tiny Traffic4Cast (day files in the official <CITY>/training/*.h5 layout), for tests: core's dataset contract
test and this plugin's."""
from pathlib import Path

import h5py
import numpy as np

from stbench import SampleData

FRAMES = 33  # clip starts 0, 10, 20 (< 33 - 12) -> 3 clips per day file


def write_day(path, seed, size=(140, 120), frames=FRAMES, channels=8):
    rng = np.random.default_rng(seed)
    array = np.zeros((frames,) + size + (channels,), np.uint8)
    array[:, ::7, ::5] = rng.integers(0, 256, array[:, ::7, ::5].shape)  # sparse roads
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("array", data=array, compression="gzip", chunks=(1,) + size + (channels,))
    return array


def write_fixture(root, **kwargs):
    """9 day files in two cities: sorted, the 9th is the test day; the other 8 train (24 clips)."""
    folder = Path(root) / "traffic4cast"
    days = {}
    for i in range(9):
        city = "ANTWERP" if i < 5 else "BANGKOK"
        path = folder / city / "training" / f"2019-01-{i + 1:02d}_{city}_8ch.h5"
        days[path] = write_day(path, i, **kwargs)
    return folder, days


def make_sample(root) -> SampleData:
    """traffic4cast-9-3: 24 training clips in 8 day files, 3 test clips in the 9th."""
    write_fixture(root)
    return SampleData(task="traffic4cast-9-3", clips={"train": 24, "test": 3},
                      check_lines=("test: 1 day files, 3 clips of 9+3 frames",))
