"""nuScenes: tiny front-camera JPEGs in the official samples/ + sweeps/ layout with PredBench-style JSON lists,
through the plugin and the CLI."""
import json

import numpy as np
import pytest
import torch

from stbench import UserError
from stbench_data_common import center_crop, decode_image, resize_like_opencv
from stbench_data_common.testing import assert_smoke_run, assert_user_error, write_image
from stbench_data_nuscenes import SPEC

HEIGHT, WIDTH = 90, 160  # the made frames keep nuScenes' 900x1600 aspect at a tenth of the size
LOGS = {  # log -> (frames, split); clip starts range(0, frames - 20, 4)
    "n008-2018-08-01-15-16-36-0400": (30, "train"),  # starts 0, 4, 8
    "n015-2018-07-18-11-07-57+0800": (20, "train"),  # exactly 20 frames: no clip, as PredBench
    "n008-2018-08-28-16-43-51-0400": (25, "train"),  # starts 0, 4
    "n015-2018-07-27-11-24-31+0800": (24, "val"),  # start 0
    "n008-2018-09-18-13-10-39-0400": (29, "test"),  # starts 0, 4, 8
}


def frame(t):
    """Red falls from top to bottom, green encodes the frame number, blue rises linearly from left to right."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    rgb = np.stack([225 - 150 * rows / HEIGHT, np.full((HEIGHT, WIDTH), 20.0 + 7 * t), 20 + 200 * cols / WIDTH], -1)
    return np.clip(rgb, 0, 255).round().astype(np.uint8)


def frame_path(log, t):
    kind = "samples" if t % 6 == 0 else "sweeps"  # a key frame every 6 frames (2 Hz of 12 Hz)
    return f"{kind}/CAM_FRONT/{log}__CAM_FRONT__{1532661911362460 + 83333 * t}.jpg"


def write_root(root, lists=True):
    notes = {"train": {}, "val": {}, "test": {}}
    for log, (count, split) in LOGS.items():
        notes[split][log] = [frame_path(log, t) for t in range(count)]
        for t, name in enumerate(notes[split][log]):
            write_image(root / "nuscenes" / name, frame(t), quality=95)
    if lists:
        (root / "annotations" / "nuscenes").mkdir(parents=True)
        for split, listed in notes.items():
            (root / "annotations" / "nuscenes" / f"nuscenes_{split}.json").write_text(json.dumps(listed, indent=4))
    return root


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_root(tmp_path_factory.mktemp("nuscenes"))


def frame_numbers(clip):
    return [round((float(g) * 255 - 20) / 7) for g in clip[:, 1].mean(dim=(1, 2))]


def test_counts_strides_and_shapes(root):
    train, val, test = (SPEC.open(root, split, 10, 10) for split in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (5, 1, 3)
    assert train.clips == [(0, 0), (0, 4), (0, 8), (2, 0), (2, 4)]
    x, y = test[2]
    assert x.shape == (10, 3, 128, 160) and y.shape == (10, 3, 128, 160) and x.dtype == torch.float32
    assert frame_numbers(torch.cat([x, y])) == list(range(8, 28))
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


def test_check_report(root):
    report = SPEC.check(root)
    assert "train: all 75 frames of the 3 logs in nuscenes_train.json exist" in report, report
    for line in ("train: 5 clips of 20 frames, frame shape (3, 128, 160)", "val: 1 clips of 20 frames",
                 "test: 3 clips of 20 frames"):
        assert line in report, report


def test_cli_smoke_run(root, tmp_path):
    record = assert_smoke_run("nuscenes-10-10", root, tmp_path / "out", train_clips=5, test_clips=3,
                              shape=(3, 128, 160))
    assert set(record["metrics"]) >= {"mse", "mae", "rmse", "ssim", "psnr"}


def test_cli_data_check_missing_is_one_line(tmp_path):
    line = assert_user_error("data", "check", "nuscenes-10-10", "--data-root", tmp_path)
    assert "nuscenes_train.json" in line and "'stbench data check nuscenes-10-10'" in line
