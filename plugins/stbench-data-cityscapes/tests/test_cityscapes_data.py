"""Cityscapes: tiny HDF5 shards in MCVD / PredBench's layout, through the plugin and the CLI (clip counts,
shapes, the check report and a smoke run on the same sample data are core's dataset contract test)."""
import h5py
import numpy as np
import pytest
import torch

from stbench import UserError
from stbench_data_cityscapes import SPEC
from stbench_data_cityscapes.sample import make_sample, write_shard
from stbench_data_common.testing import assert_user_error, frames


@pytest.fixture
def cs_root(tmp_path):
    make_sample(tmp_path)
    return tmp_path


def test_train_clips_start_every_five_frames(cs_root):
    assert [start for _, start in SPEC.open(cs_root, "train", 2, 5).clips] == [0, 5, 10, 15, 20, 0, 5]


def test_frames_exact(cs_root):
    x, y = SPEC.open(cs_root, "train", 2, 5)[1]  # sequence 0 from frame 5
    expected = np.stack(frames(30, 128, 128, seed=0))[5:12].astype(np.float32) / 255
    assert torch.equal(torch.cat([x, y]), torch.from_numpy(expected).permute(0, 3, 1, 2))


def test_several_shards_and_other_sizes(tmp_path):
    folder = tmp_path / "cityscapes" / "Cityscapes128_h5" / "test"
    write_shard(folder / "shard_0001.hdf5", [8], size=64)
    write_shard(folder / "shard_0002.hdf5", [9], size=64)
    test = SPEC.open(tmp_path, "test", 2, 5)
    assert len(test) == 2 and test[1][0].shape == (2, 3, 128, 128)


def test_missing_and_corrupt(tmp_path, cs_root):
    with pytest.raises(UserError, match="missing folder .*Cityscapes128_h5/train"):
        SPEC.open(tmp_path / "nowhere", "train", 2, 5)
    shard = cs_root / "cityscapes" / "Cityscapes128_h5" / "test" / "shard_0001.hdf5"
    shard.write_bytes(shard.read_bytes()[:4000])
    with pytest.raises(UserError, match="cannot open .*shard_0001.hdf5 as HDF5"):
        SPEC.open(cs_root, "test", 2, 5)
    with h5py.File(shard, "w") as handle:
        handle.create_dataset("frames", data=np.zeros((3, 4)))
    with pytest.raises(UserError, match="has no 'len' group"):
        SPEC.open(cs_root, "test", 2, 5)


def test_wrong_frame_shape_and_missing_frame(tmp_path):
    shard = write_shard(tmp_path / "cityscapes" / "Cityscapes128_h5" / "test" / "shard_0001.hdf5", [10, 10], size=16)
    with h5py.File(shard, "a") as handle:
        del handle["0"]["3"]
        handle["0"].create_dataset("3", data=np.zeros((16, 16), np.uint8))
        del handle["1"]["6"]
    dataset = SPEC.open(tmp_path, "test", 2, 5)
    with pytest.raises(UserError, match=r"frame 0/3 is uint8 of shape \(16, 16\); expected uint8 \[H, W, 3\]"):
        dataset[0]
    with pytest.raises(UserError, match="frame 1/6 is missing"):
        dataset[1]


@pytest.mark.slow
def test_cli_data_check_exits_2(tmp_path):
    line = assert_user_error("data", "check", "cityscapes-2-5", "--data-root", tmp_path)
    assert "Cityscapes128_h5" in line
