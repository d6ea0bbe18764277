"""BAIR: tiny .npy video arrays in PredBench's layout (the plugin's sample data), through the plugin and the CLI;
clip counts, shapes, the check report and a smoke run are core's dataset contract test."""
import numpy as np
import pytest
import torch

from stbench import UserError
from stbench_data_bair import SPEC
from stbench_data_bair.sample import make_sample, videos
from stbench_data_common.testing import assert_user_error


@pytest.fixture
def bair_root(tmp_path):
    make_sample(tmp_path)
    return tmp_path


def test_test_clip_is_centred_and_exact(bair_root):
    x, y = SPEC.open(bair_root, "test", 2, 10)[1]
    expected = videos(4, seed=10)[1, 9:21].astype(np.float32) / 255  # offset (30 - 12 + 1) // 2 = 9
    assert torch.equal(torch.cat([x, y]), torch.from_numpy(expected).permute(0, 3, 1, 2))


def test_train_offsets_are_random_but_seeded(bair_root):
    train = SPEC.open(bair_root, "train", 2, 10)
    torch.manual_seed(0)
    first = [train.clip(0)[1] for _ in range(20)]
    torch.manual_seed(0)
    assert [train.clip(0)[1] for _ in range(20)] == first
    assert len(set(first)) > 1 and all(0 <= offset <= 18 for offset in first)


def test_other_sizes_are_resized(tmp_path):
    (tmp_path / "bair").mkdir()
    np.save(tmp_path / "bair" / "test.npy", videos(2, size=32))
    assert SPEC.open(tmp_path, "test", 2, 10)[0][1].shape == (10, 3, 64, 64)


def test_missing_wrong_shape_and_corrupt(tmp_path):
    with pytest.raises(UserError, match="missing folder .*bair"):
        SPEC.open(tmp_path, "train", 2, 10)
    (tmp_path / "bair").mkdir()
    with pytest.raises(UserError, match="missing file .*train.npy"):
        SPEC.open(tmp_path, "train", 2, 10)
    np.save(tmp_path / "bair" / "train.npy", np.zeros((4, 30, 3, 64, 64), np.uint8))
    with pytest.raises(UserError, match=r"shape \(4, 30, 3, 64, 64\); expected uint8 videos \(N, T, H, W, 3\)"):
        SPEC.open(tmp_path, "train", 2, 10)
    np.save(tmp_path / "bair" / "train.npy", np.zeros((4, 8, 64, 64, 3), np.uint8))
    with pytest.raises(UserError, match="videos of 8 frames; the task needs 12"):
        SPEC.open(tmp_path, "train", 2, 10)
    (tmp_path / "bair" / "train.npy").write_bytes(b"\x93NUMPY\x01\x00broken")
    with pytest.raises(UserError, match=r"train.npy: not a readable .npy array"):
        SPEC.open(tmp_path, "train", 2, 10)


def test_truncated_array(bair_root):
    path = bair_root / "bair" / "test.npy"
    path.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(UserError, match=r"test.npy: its header declares .* it is truncated"):
        SPEC.open(bair_root, "test", 2, 10)


@pytest.mark.slow
def test_cli_data_check_exits_2(bair_root):
    np.save(bair_root / "bair" / "test.npy", np.zeros((2, 30, 64, 64), np.uint8))
    line = assert_user_error("data", "check", "bair-2-10", "--data-root", bair_root)
    assert "test.npy" in line
