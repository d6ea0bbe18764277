"""KITTI (PredBench layout): tiny PNG drive folders through the plugin and the CLI (clip counts, shapes, the
check report and a smoke run on the sample data are core's dataset contract test)."""
import numpy as np
import pytest
import torch

from stbench import UserError
from stbench_data_common.testing import assert_user_error, frames, write_image
from stbench_data_kitticaltech import KITTI_SPEC as SPEC
from stbench_data_kitticaltech.sample import make_kitti_sample, write_drive


@pytest.fixture
def kitti_root(tmp_path):
    make_kitti_sample(tmp_path)
    return tmp_path


def test_clip_starts_follow_predbench(kitti_root):
    # PredBench: starts range(0, frames - 20, stride): train stride 4 -> 2 + 1 clips, test stride 1 -> 2 clips
    assert [start for _, start in SPEC.open(kitti_root, "train", 10, 10).clips] == [0, 4, 0]


def test_resize_then_centre_crop(tmp_path):
    write_drive(tmp_path / "kitti" / "test" / "d", 21, size=(128, 424))  # already 424x128: only the crop acts
    x, y = SPEC.open(tmp_path, "test", 10, 10)[0]
    expected = np.stack(frames(21, 128, 424))[:20, :, 132:292].astype(np.float32) / 255
    assert torch.equal(torch.cat([x, y]), torch.from_numpy(expected).permute(0, 3, 1, 2))


def test_missing_and_empty(tmp_path):
    with pytest.raises(UserError, match="missing folder .*kitti/train"):
        SPEC.open(tmp_path, "train", 10, 10)
    (tmp_path / "kitti" / "test" / "d").mkdir(parents=True)
    with pytest.raises(UserError, match="no folders of numbered .png frames"):
        SPEC.open(tmp_path, "test", 10, 10)
    write_drive(tmp_path / "kitti" / "test" / "d", 20)
    with pytest.raises(UserError, match="no test clips of 20 frames"):  # PredBench drops the last window
        SPEC.open(tmp_path, "test", 10, 10)


def test_corrupt_frame(kitti_root):
    frame = kitti_root / "kitti" / "test" / "2011_09_26_drive_0005_sync" / "3.png"
    frame.write_bytes(frame.read_bytes()[:50])
    with pytest.raises(UserError, match="corrupt or truncated image .*drive_0005_sync/3.png"):
        SPEC.open(kitti_root, "test", 10, 10)[0]


def write_raw_drive(base, name, count, seed):
    """A KITTI raw drive as it unzips: <date>/<drive>_sync/image_00..03/data/NNNNNNNNNN.png + oxts, velodyne."""
    drive = base / name[:10] / name
    grey = frames(count, 19, 62, channels=1, seed=seed + 100)
    colour = frames(count, 19, 62, seed=seed)
    for camera, images in (("image_00", grey), ("image_01", grey), ("image_02", colour), ("image_03", colour[::-1])):
        for index, image in enumerate(images):
            write_image(drive / camera / "data" / f"{index:010d}.png", image)
        (drive / camera / "timestamps.txt").write_text("2011-09-26 13:02:25.964389445\n" * count)
    (drive / "oxts" / "data").mkdir(parents=True)
    (drive / "oxts" / "data" / "0000000000.txt").write_text("49.0 8.4 112.9\n")
    return drive


def test_raw_drives_read_the_left_colour_camera(tmp_path):
    # two train drives (25 and 22 frames) and one test drive (22 frames), each with all four camera folders
    base = tmp_path / "kitti"
    first = write_raw_drive(base / "train", "2011_09_26_drive_0001_sync", 25, seed=0)
    write_raw_drive(base / "train", "2011_09_26_drive_0002_sync", 22, seed=1)
    write_raw_drive(base / "test", "2011_09_26_drive_0005_sync", 22, seed=2)
    train, test = SPEC.open(tmp_path, "train", 10, 10), SPEC.open(tmp_path, "test", 10, 10)
    assert (len(train), len(test)) == (3, 2)  # as one camera per drive; four cameras would give 12 and 8
    assert "2 drives" in train.description
    # the frames come from image_02: RGB, not the grey pair and not the right camera
    x, _ = train[0]
    only_02 = tmp_path / "only02"
    write_drive(only_02 / "kitti" / "train" / "d", 25, raw_names=True, seed=0)
    for index, image in enumerate(frames(22, 19, 62, seed=1)):
        write_image(only_02 / "kitti" / "train" / "e" / f"{index}.png", image)
    assert torch.equal(x, SPEC.open(only_02, "train", 10, 10)[0][0])
    assert not torch.allclose(x[:, 0], x[:, 1])  # colour, not a grey camera
    assert (first / "image_03").is_dir()


@pytest.mark.slow
def test_cli_data_check_exits_2(tmp_path):
    line = assert_user_error("data", "check", "kitti-10-10", "--data-root", tmp_path)
    assert "kitti/train" in line
