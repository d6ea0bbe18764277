"""UCF Sports: a tiny fixture in STRPM's layout (PNG frames + clip lists), read through the plugin and the CLI
(clip counts, shapes, the check report and a smoke run on it are core's dataset contract test)."""
import numpy as np
import pytest
import torch

from stbench import UserError
from stbench_data_common.testing import assert_user_error, frames, write_image
from stbench_data_ucfsports import SPEC
from stbench_data_ucfsports.sample import write_ucf


@pytest.fixture
def ucf_root(tmp_path):
    return write_ucf(tmp_path)


def test_consecutive_frames_exact(tmp_path):
    write_ucf(tmp_path, size=(480, 720), count=8)
    x, y = SPEC.open(tmp_path, "test", 4, 1)[0]  # Walk-Front/019 from frame 3
    expected = frames(8, 480, 720, seed=0)[2:7]
    got = (torch.cat([x, y]) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(got, np.stack(expected))


def test_jpg_frames_accepted(ucf_root):
    folder = ucf_root / "ucfsports" / "ucf_action_images" / "Walk-Front" / "019"
    (folder / "4.png").unlink()
    write_image(folder / "4.jpg", frames(1, 24, 36)[0])
    assert SPEC.open(ucf_root, "test", 4, 1)[0][0].shape == (4, 3, 480, 720)


def test_missing_folders_and_frames(tmp_path):
    with pytest.raises(UserError, match="missing folder .*ucfsports"):
        SPEC.open(tmp_path, "train", 4, 1)
    write_ucf(tmp_path)
    (tmp_path / "ucfsports" / "ucf_action_images" / "Lifting" / "002" / "9.png").unlink()
    dataset = SPEC.open(tmp_path, "train", 4, 1)
    with pytest.raises(UserError, match="missing frame .*Lifting/002/9.png"):
        dataset[3]
    with pytest.raises(UserError, match="ucfsports train: 1 of the 20 frames named by train.txt are missing"):
        SPEC.check(tmp_path)


def test_corrupt_frame_and_bad_list(ucf_root):
    frame = ucf_root / "ucfsports" / "ucf_action_images" / "Diving-Side" / "001" / "2.png"
    frame.write_bytes(frame.read_bytes()[:60])
    with pytest.raises(UserError, match="corrupt or truncated image .*001/2.png"):
        SPEC.open(ucf_root, "train", 4, 1)[0]
    (ucf_root / "ucfsports" / "test.txt").write_text("Walk-Front/019/,three\n")
    with pytest.raises(UserError, match="test.txt:1: expected"):
        SPEC.open(ucf_root, "test", 4, 1)


def test_frames_of_one_clip_must_match_in_size(ucf_root):
    write_image(ucf_root / "ucfsports" / "ucf_action_images" / "Walk-Front" / "019" / "5.png", frames(1, 30, 30)[0])
    with pytest.raises(UserError, match="frames of one clip differ in size"):
        SPEC.open(ucf_root, "test", 4, 1)[0]


def test_length_limit(ucf_root):
    assert SPEC.open(ucf_root, "test", 5, 5)[0][1].shape == (5, 3, 480, 720)
    with pytest.raises(UserError, match="at most 10"):
        SPEC.open(ucf_root, "test", 10, 1)


@pytest.mark.slow
def test_cli_data_check_exits_2(ucf_root):
    (ucf_root / "ucfsports" / "train.txt").unlink()
    line = assert_user_error("data", "check", "ucfsports-4-1", "--data-root", ucf_root)
    assert "train.txt" in line
