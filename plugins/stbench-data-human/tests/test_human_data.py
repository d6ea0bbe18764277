"""Human3.6M: a tiny fixture in OpenSTL's layout (JPEG frames + clip lists), read through the plugin and the CLI
(clip counts, shapes, the check report and a smoke run on it are core's dataset contract test)."""
import numpy as np
import pytest
import torch
from PIL import Image

from stbench import UserError
from stbench_data_common.testing import assert_user_error
from stbench_data_human import SPEC
from stbench_data_human.sample import write_human


@pytest.fixture
def human_root(tmp_path):
    return write_human(tmp_path)


def test_frames_step_5_and_exact_pixels(tmp_path):
    write_human(tmp_path, size=256)
    x, y = SPEC.open(tmp_path, "test", 4, 4)[1]  # starts at frame 11: frames 11, 16, ..., 46
    for k, frame in enumerate(torch.cat([x, y])):
        path = tmp_path / "human" / "images" / f"S9_Posing.58860488_{11 + 5 * k:06d}.jpg"
        expected = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
        assert torch.allclose(frame.permute(1, 2, 0), torch.from_numpy(expected))


def test_longer_clips_up_to_the_lists_windows(human_root):
    assert SPEC.open(human_root, "test", 10, 4)[0][0].shape == (10, 3, 256, 256)
    with pytest.raises(UserError, match="at most 14"):
        SPEC.open(human_root, "test", 10, 5)


def test_missing_folders_and_lists(tmp_path):
    with pytest.raises(UserError, match="missing folder .*human"):
        SPEC.open(tmp_path, "train", 4, 4)
    write_human(tmp_path)
    (tmp_path / "human" / "test.txt").unlink()
    with pytest.raises(UserError, match="missing split file .*test.txt"):
        SPEC.open(tmp_path, "test", 4, 4)


def test_malformed_list_line(human_root):
    (human_root / "human" / "train.txt").write_text("images/S1_Walking.54138969_,1\nimages/oops\n")
    with pytest.raises(UserError, match="train.txt:2: expected '<frame prefix>,<start index>'"):
        SPEC.open(human_root, "train", 4, 4)


def test_missing_and_corrupt_frames(human_root):
    images = human_root / "human" / "images"
    (images / "S9_Posing.58860488_000021.jpg").unlink()
    with pytest.raises(UserError, match="missing frame .*S9_Posing.58860488_000021.jpg"):
        SPEC.open(human_root, "test", 4, 4)[0]
    with pytest.raises(UserError, match="3 of the 24 frames named by test.txt are missing"):
        SPEC.check(human_root)
    (images / "S1_Walking.54138969_000006.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match="corrupt or truncated image .*000006.jpg"):
        SPEC.open(human_root, "train", 4, 4)[0]


@pytest.mark.slow
def test_cli_corrupt_frame_exits_2(human_root, tmp_path):
    (human_root / "human" / "images" / "S9_Posing.58860488_000001.jpg").write_bytes(b"broken")
    line = assert_user_error("run", "--models", "persistence", "--tasks", "human-4-4", "--profile", "smoke",
                             "--data-root", human_root, "--out", tmp_path / "out")
    assert "S9_Posing.58860488_000001.jpg" in line
