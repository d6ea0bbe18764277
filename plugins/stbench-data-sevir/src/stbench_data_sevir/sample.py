"""A tiny SEVIR (vil_{training,testing}.h5 in the real layout), for tests: core's dataset contract test and this
plugin's."""
from pathlib import Path

import h5py
import numpy as np

from stbench import SampleData

N_TRAIN, N_TEST = 3, 2


def write_file(path, n, size=384, frames_in=13):
    rng = np.random.default_rng(n)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    seq = np.zeros((n, size, size, 25), np.uint8)
    for i in range(n):  # a few storm cells; mostly empty sky, like real VIL
        for t in range(25):
            seq[i, 40 + 4 * t:90 + 4 * t, 100:160, t] = rng.integers(0, 256)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("IN", data=seq[..., :frames_in], compression="gzip", chunks=(1, size, size, frames_in))
        handle.create_dataset("OUT", data=seq[..., 13:], compression="gzip", chunks=(1, size, size, 12))
    return seq


def write_fixture(root, **kwargs):
    folder = Path(root) / "sevir" / "processed"
    return (write_file(folder / "vil_training.h5", N_TRAIN, **kwargs),
            write_file(folder / "vil_testing.h5", N_TEST, **kwargs))


def make_sample(root) -> SampleData:
    """3 training and 2 test sequences of sevir-13-12: storm cells crossing an empty sky."""
    write_fixture(root)
    return SampleData(task="sevir-13-12", clips={"train": N_TRAIN, "test": N_TEST},
                      check_lines=(f"test: {N_TEST} sequences of 13+12 frames of 384x384",))
