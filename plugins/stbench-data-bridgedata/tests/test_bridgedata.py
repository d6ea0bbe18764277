"""BridgeData v1: tiny JPEG trajectories and PredBench-style JSON split lists, through the plugin and the CLI
(clip counts, shapes, the check report and a smoke run on the sample data are core's dataset contract test)."""
import json

import numpy as np
import pytest
import torch

from stbench import UserError
from stbench_data_bridgedata import SPEC
from stbench_data_bridgedata.sample import GROUP, frame, write_root
from stbench_data_common import decode_image, resize_like_opencv
from stbench_data_common.testing import assert_user_error


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_root(tmp_path_factory.mktemp("bridgedata"))


def frame_numbers(clip):
    return [round((float(g) * 255 - 30) / 9) for g in clip[:, 1].mean(dim=(1, 2))]


def test_short_trajectories_are_dropped_and_the_clips_say_how_they_start(root):
    assert len(SPEC.open(root, "train", 2, 10)) == 2  # traj1 (8 frames) is dropped, as PredBench does
    val = SPEC.open(root, "val", 2, 10)
    assert "1 of 1 trajectories hold 12 frames" in val.description and "centre start" in val.description


def test_val_and_test_clips_start_at_the_centre(root):
    test = SPEC.open(root, "test", 2, 10)
    assert frame_numbers(torch.cat(test[0])) == list(range(4, 16))  # int((20 - 12 + 1) / 2) = 4
    assert frame_numbers(torch.cat(test[1])) == list(range(2, 14))  # int((16 - 12 + 1) / 2) = 2
    assert frame_numbers(torch.cat(SPEC.open(root, "val", 2, 10)[0])) == list(range(12))


def test_training_starts_are_random_and_seeded(root):
    train = SPEC.open(root, "train", 2, 10)
    torch.manual_seed(0)
    starts = [train.clip(0)[1] for _ in range(30)]
    torch.manual_seed(0)
    assert [train.clip(0)[1] for _ in range(30)] == starts and set(starts) == {0, 1, 2}  # 14 frames
    numbers = frame_numbers(torch.cat(train[0]))
    assert numbers[0] in (0, 1, 2) and numbers == list(range(numbers[0], numbers[0] + 12))


def test_channel_order_orientation_and_values(root):
    x, y = SPEC.open(root, "test", 2, 10)[0]
    clip = torch.cat([x, y])
    expected = torch.from_numpy(np.stack([frame(t, 120, 160) for t in range(4, 16)])).permute(0, 3, 1, 2) / 255
    assert float((clip - expected).abs().mean()) < 1.5 / 255  # JPEG at quality 95
    red, blue = clip[:, 0], clip[:, 2]
    assert bool((red[:, 0] > red[:, -1]).all())  # row 0 is the top of the image
    assert bool((blue[:, :, -1] > blue[:, :, 0]).all())  # column 0 is its left


def test_frames_of_other_sizes_are_resized_as_opencv(root):
    train = SPEC.open(root, "train", 2, 10)
    torch.manual_seed(0)
    folder, start = train.clip(1)
    clip = train.read(folder, start, 12)
    assert clip.shape == (12, 3, 120, 160)
    stored = decode_image(root / "bridge_data_v1" / folder / f"im_{start}.jpg")  # 240x320
    expected = resize_like_opencv(torch.from_numpy(np.array(stored)).permute(2, 0, 1), (120, 160)) / 255
    assert torch.equal(clip[0], expected)


def test_missing_data_and_bad_lists(tmp_path):
    with pytest.raises(UserError, match="missing file .*annotations/bridgedata/bridgedata_train.json "
                                        r"\(PredBench's BridgeData train list\); get it from github.com/OpenEarthLab"):
        SPEC.open(tmp_path, "train", 2, 10)
    (tmp_path / "annotations" / "bridgedata").mkdir(parents=True)
    listed = tmp_path / "annotations" / "bridgedata" / "bridgedata_test.json"
    listed.write_text(json.dumps({f"{GROUP}/traj4/images0": 20}))
    with pytest.raises(UserError, match="missing folder .*bridge_data_v1 .*rail-berkeley.github.io/bridgedata"):
        SPEC.open(tmp_path, "test", 2, 10)
    listed.write_text(json.dumps({f"{GROUP}/traj4/images0": "20"}))
    with pytest.raises(UserError, match="maps to '20'; expected its frame count"):
        SPEC.open(tmp_path, "test", 2, 10)
    listed.write_text(json.dumps([f"{GROUP}/traj4/images0"]))
    with pytest.raises(UserError, match="holds a JSON list; expected an object"):
        SPEC.open(tmp_path, "test", 2, 10)
    with pytest.raises(UserError, match="splits train, val, test, not 'dev'"):
        SPEC.open(tmp_path, "dev", 2, 10)
    with pytest.raises(UserError, match="at most 39 frames"):
        SPEC.open(tmp_path, "test", 20, 20)


def test_missing_frame_is_named(tmp_path):
    root = write_root(tmp_path)
    (root / "bridge_data_v1" / GROUP / "traj5/images1/im_15.jpg").unlink()
    with pytest.raises(UserError, match="bridgedata test: 1 of the 2 trajectories .* lack frames, e.g. .*im_15.jpg"):
        SPEC.check(root)
    test = SPEC.open(root, "test", 2, 10)  # opening trusts the lists; reading a clip decodes its frames
    assert frame_numbers(torch.cat(test[1])) == list(range(2, 14))  # frames 2..13 are all there
    with pytest.raises(UserError, match="missing frame .*traj5/images1/im_15.jpg"):
        SPEC.open(root, "test", 6, 10)[1]  # 16 frames: start 0, frames 0..15


@pytest.mark.slow
def test_cli_data_check_missing_is_one_line(tmp_path):
    line = assert_user_error("data", "check", "bridgedata-2-10", "--data-root", tmp_path)
    assert "bridgedata_train.json" in line and "'stbench data check bridgedata-2-10'" in line
