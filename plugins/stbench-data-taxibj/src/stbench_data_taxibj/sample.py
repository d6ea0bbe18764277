"""A tiny TaxiBJ (dataset.npz in the real layout), for tests: core's dataset contract test and this plugin's."""
from pathlib import Path

import numpy as np

from stbench import SampleData

N_TRAIN, N_TEST = 6, 3


def write_fixture(root, compressed=False, x_test_shape=None):
    rng = np.random.default_rng(0)
    folder = Path(root) / "taxibj"
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "X_train": rng.uniform(-1, 1, (N_TRAIN, 4, 2, 32, 32)),
        "Y_train": rng.uniform(-1, 1, (N_TRAIN, 4, 2, 32, 32)),
        "X_test": rng.uniform(-1, 1, x_test_shape or (N_TEST, 4, 2, 32, 32)),
        "Y_test": rng.uniform(-1, 1, (N_TEST, 4, 2, 32, 32)),
    }
    (np.savez_compressed if compressed else np.savez)(folder / "dataset.npz", **arrays)
    return arrays


def make_sample(root) -> SampleData:
    """6 training and 3 test clips of taxibj-4-4, flows uniform in [-1, 1]."""
    write_fixture(root)
    return SampleData(task="taxibj-4-4", clips={"train": N_TRAIN, "test": N_TEST},
                      check_lines=(f"test: {N_TEST} clips of 4+4 frames, frame shape (2, 32, 32)",))
