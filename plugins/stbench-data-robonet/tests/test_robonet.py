"""RoboNet: tiny HDF5 trajectories in the official format (MP4 and JPEG camera streams) with PredBench-style JSON
lists, through the plugin and the CLI (clip counts, shapes, the check report and a smoke run on the sample data are
core's dataset contract test)."""
import io
import json
import random

import av
import h5py
import numpy as np
import pytest
import torch

from stbench import UserError
from stbench_data_common import resize_like_opencv
from stbench_data_common.testing import assert_user_error
from stbench_data_robonet import INDEX, SPEC
from stbench_data_robonet.sample import frame, write_root, write_trajectory


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_root(tmp_path_factory.mktemp("robonet"))


def frame_numbers(clip):
    return [round((float(g) * 255 - 30) / 9) for g in clip[:, 1].mean(dim=(1, 2))]


def camera_of(clip):
    return round((float(clip[:, 2, :, 0].mean()) * 255 - 20) / 50)


def test_index(root):
    for split in ("train", "val", "test"):
        SPEC.open(root, split, 2, 10)
    index = json.loads((root / "robonet" / "hdf5" / INDEX).read_text())["files"]
    assert index["google_traj3.hdf5"][2:] == [13, 1, "jpg", "BGR"] and len(index) == 6


def test_cameras_starts_and_frames(root):
    test = SPEC.open(root, "test", 2, 10)
    chooser = random.Random(42)  # PredBench: random.choice(range(ncam)) per kept file, in list order, seed 42
    expected = [chooser.choice(range(3)), chooser.choice(range(2))]
    assert [camera for _, _, camera in test.clips] == expected
    clip = torch.cat(test[0])
    assert frame_numbers(clip) == list(range(4, 16)) and camera_of(clip) == expected[0]  # int((20 - 12 + 1) / 2) = 4
    assert frame_numbers(torch.cat(test[1])) == list(range(2, 14))
    train = SPEC.open(root, "train", 2, 10)
    assert [camera for _, _, camera in train.clips] == [0, 0]
    torch.manual_seed(0)
    starts = {train.clip(0)[1] for _ in range(30)}
    assert starts == {0, 1, 2}


def test_channel_order_orientation_and_values(root):
    """MP4 and JPEG streams, stored RGB or BGR, all come out RGB, top row first."""
    for split, index, name in (("test", 0, "berkeley_widowx_traj5.hdf5"), ("test", 1, "penn_kuka_traj6.hdf5"),
                               ("train", 1, "google_traj3.hdf5")):
        dataset = SPEC.open(root, split, 2, 10)
        (_, trajectory, camera), start = dataset.clip(index) if split != "train" else (dataset.clips[index], 0)
        clip = dataset.read((name, trajectory, camera), start, 12)
        written = np.stack([frame(t, camera) for t in range(start, start + 12)])  # RGB
        expected = resize_like_opencv(torch.from_numpy(written).permute(0, 3, 1, 2), (120, 160)) / 255
        assert float((clip - expected).abs().mean()) < 2 / 255, name
        assert bool((clip[:, 0, 0] > clip[:, 0, -1]).all()) and bool((clip[:, 2, :, -1] > clip[:, 2, :, 0]).all())


def test_mp4_frames_are_resized_as_opencv(root):
    path = root / "robonet" / "hdf5" / "berkeley_widowx_traj5.hdf5"
    with h5py.File(path, "r") as handle:
        data = handle["env"]["cam1_video"]["frames"][:].tobytes()
    with av.open(io.BytesIO(data)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)][5:17]
    test = SPEC.open(root, "test", 2, 10)
    _, trajectory, _ = test.clips[0]
    clip = test.read(("berkeley_widowx_traj5.hdf5", trajectory, 1), 5, 12)
    expected = resize_like_opencv(torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2), (120, 160)) / 255
    assert torch.equal(clip, expected)


def test_missing_data_and_bad_lists(tmp_path):
    with pytest.raises(UserError, match=r"missing file .*annotations/robonet/robonet_train.json \(PredBench's "
                                        "RoboNet train list\\); get it from github.com/OpenEarthLab/PredBench"):
        SPEC.open(tmp_path, "train", 2, 10)
    (tmp_path / "annotations" / "robonet").mkdir(parents=True)
    listed = tmp_path / "annotations" / "robonet" / "robonet_test.json"
    listed.write_text(json.dumps(["google_traj1.hdf5"]))
    with pytest.raises(UserError, match="missing folder .*robonet/hdf5 .*SudeepDasari/RoboNet"):
        SPEC.open(tmp_path, "test", 2, 10)
    (tmp_path / "robonet" / "hdf5").mkdir(parents=True)
    with pytest.raises(UserError, match="1 of the 1 RoboNet files listed are missing .*google_traj1.hdf5"):
        SPEC.open(tmp_path, "test", 2, 10)
    listed.write_text(json.dumps({"google_traj1.hdf5": 30}))
    with pytest.raises(UserError, match="holds a JSON dict; expected a list"):
        SPEC.open(tmp_path, "test", 2, 10)
    with pytest.raises(UserError, match="splits train, val, test, not 'dev'"):
        SPEC.open(tmp_path, "dev", 2, 10)


def test_damaged_files(tmp_path):
    root = write_root(tmp_path)
    path = root / "robonet" / "hdf5" / "stanford_fetch_traj4.hdf5"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(UserError, match="cannot read the RoboNet file .*stanford_fetch_traj4.hdf5 .*download it again"):
        SPEC.open(root, "val", 2, 10)
    with h5py.File(path, "w") as handle:
        handle.create_group("env").attrs["n_cams"] = 0
    with pytest.raises(UserError, match="holds no camera stream"):
        SPEC.open(root, "val", 2, 10)


def test_index_follows_changed_files(tmp_path):
    root = write_root(tmp_path)
    assert len(SPEC.open(root, "val", 2, 10)) == 1
    write_trajectory(root / "robonet" / "hdf5" / "stanford_fetch_traj4.hdf5", 9, 1, "jpg")  # rewritten, shorter
    with pytest.raises(UserError, match="no val clips of 12 frames"):
        SPEC.open(root, "val", 2, 10)
    (root / "robonet" / "hdf5" / INDEX).write_text("{not json")  # a damaged index is rebuilt
    assert len(SPEC.open(root, "train", 2, 10)) == 2


@pytest.mark.slow
def test_cli_data_check_missing_is_one_line(tmp_path):
    line = assert_user_error("data", "check", "robonet-2-10", "--data-root", tmp_path)
    assert "robonet" in line and "'stbench data check robonet-2-10'" in line
