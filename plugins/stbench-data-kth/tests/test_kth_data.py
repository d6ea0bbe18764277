"""KTH: tiny fixtures in both real layouts (official AVIs written with PyAV, JPEG frame folders); clip counts,
shapes, the check report and a smoke run on the frame folders are core's dataset contract test."""
import zipfile

import numpy as np
import pytest
import torch

from stbench import UserError
from stbench.cli import main
from stbench_data_common.testing import assert_user_error, frames, write_image, write_video as encode_video
from stbench_data_kth import SPEC, clip_starts
from stbench_data_kth.sample import ACTIONS, make_sample, write_video

@pytest.fixture
def kth_root(tmp_path):
    make_sample(tmp_path)
    return tmp_path


def test_shorter_tasks_take_more_windows(kth_root):
    assert len(SPEC.open(kth_root, "train", 10, 10)) == 4 * 1 + 2 * 6


def test_windows_follow_openstl():
    assert clip_starts(list(range(1, 36)), 30, fast=False) == [5]
    assert clip_starts(list(range(1, 36)), 30, fast=True) == [2, 5]
    numbers = list(range(1, 21)) + list(range(22, 37))  # frame 21 is missing
    assert clip_starts(numbers, 10, fast=False) == [0, 10, 25]


def test_channel_zero_resized_to_128(tmp_path):
    for action in ACTIONS:
        for person in (1, 17):
            folder = tmp_path / "kth" / action / f"person{person:02d}_{action}_d2_uncomp"
            for number in range(1, 31):
                write_image(folder / f"image_{number:04d}.jpg", np.full((120, 160, 3), (200, 60, 10), np.uint8))
    x, _ = SPEC.open(tmp_path, "test", 10, 20)[0]
    assert abs(float(x.mean()) - 200 / 255) < 3 / 255


def test_split_by_person(kth_root):
    write_video(kth_root, "boxing", 16)  # a second train video, none for test
    assert len(SPEC.open(kth_root, "train", 10, 20)) == 9
    assert len(SPEC.open(kth_root, "test", 10, 20)) == 8


def grey_frames(count, seed):
    """KTH is grey: every channel equal (so the AVI's YUV holds them without chroma loss)."""
    return [np.repeat(frame[..., :1], 3, axis=-1) for frame in frames(count, 120, 160, channels=1, seed=seed)]


def write_avi(root, action, person, count=35, codec="mpeg4", seed=None):
    """An official-style AVI: <action>/personNN_<action>_d1_uncomp.avi, 160x120, 25 fps."""
    path = root / "kth" / action / f"person{person:02d}_{action}_d1_uncomp.avi"
    return encode_video(path, grey_frames(count, person * 7 + len(action) if seed is None else seed), codec=codec)


@pytest.fixture
def avi_root(tmp_path):
    for action in ACTIONS:
        for person in (1, 17):
            write_avi(tmp_path, action, person)
    return tmp_path


def test_official_avis_give_the_same_clips(avi_root):
    # the same clip rule as the frame folders: 8 clips of 30 frames per split, 16 of 20 frames
    for split in ("train", "test"):
        dataset = SPEC.open(avi_root, split, 10, 20)
        assert len(dataset) == 8 and "6 AVIs, 0 frame folders" in dataset.description
        x, y = dataset[len(dataset) - 1]
        assert x.shape == (10, 1, 128, 128) and y.shape == (20, 1, 128, 128)
    assert len(SPEC.open(avi_root, "train", 10, 10)) == 4 * 1 + 2 * 6


def test_avi_and_frame_folder_read_alike(tmp_path):
    # a lossless AVI and PNG frames of the same video give the same clip, value for value
    video = grey_frames(35, seed=3)
    for action in ACTIONS:
        for person in (1, 17):
            encode_video(tmp_path / "avi" / "kth" / action / f"person{person:02d}_{action}_d1_uncomp.avi", video,
                        codec="ffv1")
            folder = tmp_path / "png" / "kth" / action / f"person{person:02d}_{action}_d1_uncomp"
            for number, frame in enumerate(video, start=1):
                write_image(folder / f"image_{number:04d}.png", frame)
    from_avi, from_png = SPEC.open(tmp_path / "avi", "test", 10, 20), SPEC.open(tmp_path / "png", "test", 10, 20)
    assert len(from_avi) == len(from_png) == 8
    for index in (0, 3, 7):
        (x_avi, y_avi), (x_png, y_png) = from_avi[index], from_png[index]
        assert torch.equal(x_avi, x_png) and torch.equal(y_avi, y_png)


def test_frame_folder_wins_over_its_avi(kth_root):
    write_avi(kth_root, "boxing", 17, count=65)  # same video name as the frame folder: not counted twice
    assert len(SPEC.open(kth_root, "test", 10, 20)) == 8


def test_truncated_avi(avi_root):
    path = avi_root / "kth" / "walking" / "person17_walking_d1_uncomp.avi"
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(UserError, match="person17_walking_d1_uncomp.avi"):
        dataset = SPEC.open(avi_root, "test", 10, 20)
        for index in range(len(dataset)):
            dataset[index]


def test_prepare_from_official_zips(tmp_path, capsys):
    # the KTH site ships one zip per action holding flat AVIs
    downloads = tmp_path / "downloads"
    for action in ACTIONS:
        videos = tmp_path / "videos" / action
        for person in (1, 17):
            encode_video(videos / f"person{person:02d}_{action}_d1_uncomp.avi", grey_frames(35, person))
        downloads.mkdir(exist_ok=True)
        with zipfile.ZipFile(downloads / f"{action}.zip", "w") as archive:
            for path in sorted(videos.iterdir()):
                archive.write(path, path.name)
    root = tmp_path / "data"
    assert main(["data", "prepare", "kth-10-20", "--from", str(downloads), "--data-root", str(root)]) == 0
    assert "12 videos (AVIs)" in capsys.readouterr().out
    assert sorted(p.name for p in (root / "kth" / "boxing").iterdir()) == [
        "person01_boxing_d1_uncomp.avi", "person17_boxing_d1_uncomp.avi"]
    assert len(SPEC.open(root, "train", 10, 20)) == len(SPEC.open(root, "test", 10, 20)) == 8
    # a second prepare never overwrites; nothing temporary is left beside the layout
    assert main(["data", "prepare", "kth-10-20", "--from", str(downloads), "--data-root", str(root)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert sorted(p.name for p in root.iterdir()) == ["kth"]


def test_prepare_fails_whole(tmp_path, capsys):
    # five actions only: an error, and no half-written kth/ folder
    downloads = tmp_path / "downloads"
    for action in ACTIONS[:5]:
        encode_video(downloads / f"person01_{action}_d1_uncomp.avi", grey_frames(35, 1))
    root = tmp_path / "data"
    assert main(["data", "prepare", "kth-10-20", "--from", str(downloads), "--data-root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "no KTH video of walking" in err and len(err.strip().splitlines()) == 1
    assert not root.exists()


def test_missing_folders(tmp_path):
    with pytest.raises(UserError, match="missing folder .*kth") as error:
        SPEC.open(tmp_path, "train", 10, 20)
    message = str(error.value)
    assert "\n" not in message and str(tmp_path.resolve()) in message
    assert "www.csc.kth.se" in message and "kth_action.zip" in message and "stbench data check kth-10-20" in message
    (tmp_path / "kth" / "boxing").mkdir(parents=True)
    with pytest.raises(UserError, match="handclapping.*handwaving"):
        SPEC.open(tmp_path, "train", 10, 20)


def test_no_test_persons(tmp_path):
    for action in ACTIONS:
        write_video(tmp_path, action, 1)
    with pytest.raises(UserError, match="no test videos \\(persons 17-25\\)"):
        SPEC.open(tmp_path, "test", 10, 20)


def test_corrupt_frame(kth_root):
    frame = kth_root / "kth" / "boxing" / "person17_boxing_d1_uncomp" / "image_0010.jpg"
    frame.write_bytes(frame.read_bytes()[:40])
    dataset = SPEC.open(kth_root, "test", 10, 20)
    with pytest.raises(UserError, match="corrupt or truncated image .*image_0010.jpg"):
        for index in range(len(dataset)):
            dataset[index]


def test_too_long_and_too_short(kth_root):
    with pytest.raises(UserError, match="at most 50"):
        SPEC.open(kth_root, "train", 10, 41)
    with pytest.raises(UserError, match="no train clips of 40 frames"):
        SPEC.open(kth_root, "train", 20, 20)


@pytest.mark.slow
def test_cli_missing_data_exits_2(tmp_path):
    line = assert_user_error("run", "--models", "persistence", "--tasks", "kth-10-20", "--profile", "smoke",
                             "--data-root", tmp_path, "--out", tmp_path / "out")
    assert "kth" in line


def test_unprepared_download_is_named(tmp_path):
    # the official zips left unpacked: the error (and so `stbench data check`) says to prepare them
    (tmp_path / "boxing.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    with pytest.raises(UserError, match=f"run 'stbench data prepare kth-10-20 --from {tmp_path / 'boxing.zip'}'"):
        SPEC.open(tmp_path, "train", 10, 20)
    (tmp_path / "kth").mkdir()  # inside kth/ they must move out first: prepare never writes into a folder
    (tmp_path / "boxing.zip").rename(tmp_path / "kth" / "boxing.zip")
    with pytest.raises(UserError, match=f"boxing.zip looks like the download, not yet laid out: move it out of "
                                        f"{tmp_path / 'kth'} and run 'stbench data prepare kth-10-20") as error:
        SPEC.open(tmp_path, "train", 10, 20)
    assert "\n" not in str(error.value)
