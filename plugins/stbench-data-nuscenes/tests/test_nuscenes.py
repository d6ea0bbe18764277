"""nuScenes: tiny front-camera JPEGs in the official samples/ + sweeps/ layout with PredBench-style JSON lists,
through the plugin and the CLI (clip counts, shapes, the check report and a smoke run on the sample data are
core's dataset contract test)."""
import json

import numpy as np
import pytest
import torch

from stbench import UserError
from stbench_data_common import center_crop, decode_image, resize_like_opencv
from stbench_data_common.testing import assert_user_error
from stbench_data_nuscenes import SPEC
from stbench_data_nuscenes.sample import WIDTH, frame_path, write_root


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_root(tmp_path_factory.mktemp("nuscenes"))


def frame_numbers(clip):
    return [round((float(g) * 255 - 20) / 7) for g in clip[:, 1].mean(dim=(1, 2))]


def test_strides_and_frames(root):
    train, test = SPEC.open(root, "train", 10, 10), SPEC.open(root, "test", 10, 10)
    assert train.clips == [(0, 0), (0, 4), (0, 8), (2, 0), (2, 4)]
    assert frame_numbers(torch.cat(test[2])) == list(range(8, 28))
    assert frame_numbers(torch.cat(train[4])) == list(range(4, 24))
    assert "no crop" in test.description and "centre 128x160" in train.description


def test_training_frames_are_cropped_and_test_frames_squeezed(root):
    """PredBench resizes training frames to 128x228 and keeps the centre 160 columns; its val and test pipelines
    resize to 128x160 directly. Blue rises linearly with x, so the first and last columns show which."""
    train_clip = torch.cat(SPEC.open(root, "train", 10, 10)[0])
    test_clip = torch.cat(SPEC.open(root, "test", 10, 10)[0])

    def blue_at(x):  # the written value at source column x (continuous)
        return (20 + 200 * x / WIDTH) / 255

    scale = WIDTH / 228  # source columns per resized column; the crop starts at column (228 - 160) // 2 = 34
    for clip, first, last in ((train_clip, (34.5 * scale - 0.5), (193.5 * scale - 0.5)), (test_clip, 0.0, 159.0)):
        blue = clip[:, 2, 64]
        assert abs(float(blue[:, 0].mean()) - blue_at(first)) < 2.5 / 255
        assert abs(float(blue[:, -1].mean()) - blue_at(last)) < 2.5 / 255
        assert bool((clip[:, 0, 0] > clip[:, 0, -1]).all())  # red: row 0 is the top of the image


def test_exact_resize_and_crop(root):
    path = root / "nuscenes" / frame_path("n008-2018-08-01-15-16-36-0400", 4)
    stored = torch.from_numpy(np.array(decode_image(path))).permute(2, 0, 1)
    x, _ = SPEC.open(root, "train", 10, 10)[1]  # starts at frame 4
    assert torch.equal(x[0], center_crop(resize_like_opencv(stored, (128, 228)), (128, 160)) / 255)
    path = root / "nuscenes" / frame_path("n015-2018-07-27-11-24-31+0800", 0)
    stored = torch.from_numpy(np.array(decode_image(path))).permute(2, 0, 1)
    x, _ = SPEC.open(root, "val", 10, 10)[0]
    assert torch.equal(x[0], resize_like_opencv(stored, (128, 160)) / 255)


def test_missing_data_and_bad_lists(tmp_path):
    with pytest.raises(UserError, match=r"missing file .*annotations/nuscenes/nuscenes_train.json \(PredBench's "
                                        "nuScenes train list\\); get it from github.com/OpenEarthLab/PredBench"):
        SPEC.open(tmp_path, "train", 10, 10)
    (tmp_path / "annotations" / "nuscenes").mkdir(parents=True)
    listed = tmp_path / "annotations" / "nuscenes" / "nuscenes_test.json"
    listed.write_text(json.dumps({"n008": [frame_path("n008", t) for t in range(25)]}))
    with pytest.raises(UserError, match="missing folder .*nuscenes .*nuscenes.org"):
        SPEC.open(tmp_path, "test", 10, 10)
    listed.write_text(json.dumps({"n008": "samples/CAM_FRONT/x.jpg"}))
    with pytest.raises(UserError, match="'n008' must map to a list of frame paths"):
        SPEC.open(tmp_path, "test", 10, 10)
    with pytest.raises(UserError, match="splits train, val, test, not 'dev'"):
        SPEC.open(tmp_path, "dev", 10, 10)


def test_too_short_logs_and_missing_frames(tmp_path):
    root = write_root(tmp_path)
    with pytest.raises(UserError, match="no val clips of 24 frames"):
        SPEC.open(root, "val", 12, 12)  # 24 frames hold no start below 24 - 24
    (root / "nuscenes" / frame_path("n008-2018-09-18-13-10-39-0400", 12)).unlink()
    with pytest.raises(UserError, match="nuscenes test: 1 of the 29 frames listed .* missing, e.g. .*sweeps/CAM_FRONT"):
        SPEC.check(root)
    with pytest.raises(UserError, match="missing frame .*CAM_FRONT__"):
        SPEC.open(root, "test", 10, 10)[0]


@pytest.mark.slow
def test_cli_data_check_missing_is_one_line(tmp_path):
    line = assert_user_error("data", "check", "nuscenes-10-10", "--data-root", tmp_path)
    assert "nuscenes_train.json" in line and "'stbench data check nuscenes-10-10'" in line
