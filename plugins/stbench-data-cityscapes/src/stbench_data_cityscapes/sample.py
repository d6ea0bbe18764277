"""A tiny Cityscapes in MCVD / PredBench's HDF5 layout, for tests: core's dataset contract test and this plugin's."""
from pathlib import Path

import h5py

from stbench import SampleData
from stbench_data_common.testing import frames, sample_of

LENGTHS = {"train": [30, 12], "test": [30, 12, 5]}


def write_shard(path, lengths, size=128, seed=0):
    """MCVD's HDF5Maker layout: len/<k> holds the frame count, <k>/<i> frame i (lzf-compressed uint8)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle.create_group("len")
        handle.create_group("videos")
        for key, count in enumerate(lengths):
            handle["len"].create_dataset(str(key), data=count)
            group = handle.create_group(str(key))
            for index, frame in enumerate(frames(count, size, size, seed=seed + key)):
                group.create_dataset(str(index), data=frame, dtype="uint8", compression="lzf")
    return path


def make_sample(root) -> SampleData:
    """One shard per split: train sequences of 30 and 12 frames, test ones of 30, 12 and 5.

    cityscapes-2-5 (7 frames): train clips start at 0, 5, ... while 7 frames fit (5 clips of the 30-frame
    sequence, 2 of the 12-frame one); test has one clip per sequence long enough (30 and 12; not 5).
    """
    for split, lengths in LENGTHS.items():
        write_shard(Path(root) / "cityscapes" / "Cityscapes128_h5" / split / "shard_0001.hdf5", lengths)
    return sample_of("cityscapes-2-5", {"train": 7, "test": 2}, (3, 128, 128))
