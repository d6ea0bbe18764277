"""Shared fixtures: the test plugin on sys.path and small data in the real on-disk format."""
from pathlib import Path

import numpy as np
import pytest

from stbench import plugins

HERE = Path(__file__).parent


@pytest.fixture
def use_plugins(monkeypatch):
    """Make extra plugin folders importable (as an installed distribution would be) and reload."""

    def use(*folders, only=None):
        for folder in folders:
            monkeypatch.syspath_prepend(str(HERE / folder))
        if only is None:
            monkeypatch.delenv("STBENCH_PLUGINS", raising=False)
        else:
            monkeypatch.setenv("STBENCH_PLUGINS", only)
        plugins.reset()

    yield use
    monkeypatch.undo()
    plugins.reset()


def make_toy(root, n_train=12, n_test=6, length=12, seed=0):
    """toy/{train,test}.npy: a bright square drifting one pixel per frame (uint8 [N, T, 1, 16, 16])."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "toy"
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        clips = np.zeros((n, length, 1, 16, 16), dtype=np.uint8)
        for i in range(n):
            r, c = rng.integers(0, 8, size=2)
            for t in range(length):
                clips[i, t, 0, r:r + 4, (c + t) % 12:(c + t) % 12 + 4] = 200
        np.save(folder / f"{split}.npy", clips)
    return Path(root)


@pytest.fixture
def toy_root(tmp_path):
    return make_toy(tmp_path / "data")


@pytest.fixture
def toy_maker(tmp_path):
    """``toy_maker(name, **sizes)``: another toy data root under the test's folder (see :func:`make_toy`)."""
    return lambda name, **sizes: make_toy(tmp_path / name, **sizes)


@pytest.fixture(scope="session")
def mmnist_root(tmp_path_factory):
    """One data root for the whole session, so the fixed-seed Moving MNIST test set is generated once."""
    return tmp_path_factory.mktemp("mmnist-data")
