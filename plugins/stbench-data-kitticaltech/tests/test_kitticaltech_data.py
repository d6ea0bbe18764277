"""KITTI -> Caltech: tiny hickle (HDF5) and Norpix .seq fixtures and OpenSTL's npy cache, via the plugin and CLI
(clip counts, shapes, the check report and a smoke run on the sample data are core's dataset contract test)."""
import io

import h5py
import numpy as np
import pytest
import torch

from stbench import UserError
from stbench_data_common import decode_image
from stbench_data_common.testing import assert_user_error, frames
from stbench_data_kitticaltech import KITTICALTECH_SPEC as SPEC
from stbench_data_kitticaltech.norpix import SeqFile
from stbench_data_kitticaltech.sample import SOURCES, make_kitticaltech_sample, write_hkl_v2, write_seq

@pytest.fixture
def kc_root(tmp_path):
    make_kitticaltech_sample(tmp_path)
    return tmp_path


def test_kitti_windows_stay_in_one_drive_and_frames_are_exact(kc_root):
    train = SPEC.open(kc_root, "train", 10, 1)
    assert [start for _, start in train.clips] == [1, 12, 23, 38, 49]  # from each drive's end, every 11
    x, y = train[2]
    expected = np.stack(frames(60, 128, 160))[23:34].astype(np.float32) / 255
    assert torch.equal(torch.cat([x, y]), torch.from_numpy(expected).permute(0, 3, 1, 2))


def test_caltech_every_third_frame_resized_and_cropped(kc_root):
    test = SPEC.open(kc_root, "test", 10, 1)
    seq = SeqFile(kc_root / "caltech" / "set06" / "V000.seq")
    assert (len(seq), seq.width, seq.height) == (40, 64, 48)
    # 40 frames -> the 3rd, 6th, ... (13 kept) -> one 11-frame window ending at the last kept frame
    x, _ = test[0]
    # OpenSTL's process_im on the decoded JPEG: skimage resize to (128, round(64 * 128 / 48) = 171), columns 5..164
    from skimage.transform import resize as skimage_resize

    jpeg = decode_image(seq.jpeg(8), "RGB")  # the window starts at kept frame 2 (file frame 8)
    reference = skimage_resize(jpeg, (128, 171), preserve_range=True)[:, 5:165] / 255
    assert np.abs(x[0].permute(1, 2, 0).numpy() - reference).max() < 1e-6


def test_seq_with_other_padding(tmp_path):
    path = write_seq(tmp_path / "a.seq", frames(5, 8, 8), gap=12)
    assert len(SeqFile(path)) == 5


def test_hickle5_source_list(kc_root):
    """hickle 4/5 write a list as a group of items, strings as char arrays, repeats as object references."""
    path = kc_root / "kitti_hkl" / "sources_train.hkl"
    with h5py.File(path, "w") as handle:
        group = handle.create_group("data")
        for index, name in enumerate(SOURCES):
            key = f"data{index}"
            if index in (0, 34):
                item = group.create_dataset(key, data=np.frombuffer(name.encode(), "S1")[None])
                first = item
            else:
                item = group.create_dataset(key, data=first.ref, dtype=h5py.ref_dtype)
            item.attrs["item_index"] = index
    assert len(SPEC.open(kc_root, "train", 10, 1)) == 5


def test_npy_cache(tmp_path):
    cache = tmp_path / "kitticaltech_npy"
    cache.mkdir()
    np.save(cache / "train_data.npy", np.stack(frames(30, 128, 160)))
    np.save(cache / "train_idx.npy", np.array([19, 8]))  # OpenSTL stores them from the end backwards
    np.save(cache / "test_data.npy", np.stack(frames(22, 128, 160)).astype(np.float32) / 255)
    np.save(cache / "test_idx.npy", np.array([11, 0]))
    train, test = SPEC.open(tmp_path, "train", 10, 1), SPEC.open(tmp_path, "test", 10, 1)
    assert (len(train), len(test)) == (2, 2)
    assert train[0][0].shape == (10, 3, 128, 160) and float(test[1][1].max()) <= 1.0
    assert len(SPEC.open(tmp_path, "test", 4, 1)) == 2
    with pytest.raises(UserError, match="starts of 11-frame clips"):
        SPEC.open(tmp_path, "test", 10, 2)
    np.save(cache / "test_data.npy", np.zeros((22, 3, 128, 160), np.uint8))
    with pytest.raises(UserError, match=r"has shape \(22, 3, 128, 160\); expected \(N, 128, 160, 3\)"):
        SPEC.open(tmp_path, "test", 10, 1)
    (cache / "train_idx.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(UserError, match=r"train_idx.npy: not a readable .npy array"):
        SPEC.open(tmp_path, "train", 10, 1)


def test_missing_data(tmp_path):
    with pytest.raises(UserError, match="no kitti_hkl/ and no kitticaltech_npy/"):
        SPEC.open(tmp_path, "train", 10, 1)
    (tmp_path / "kitti_hkl").mkdir()
    with pytest.raises(UserError, match="missing file .*X_train.hkl"):
        SPEC.open(tmp_path, "train", 10, 1)
    (tmp_path / "caltech").mkdir()
    with pytest.raises(UserError, match="no set\\*/V\\*.seq videos"):
        SPEC.open(tmp_path, "test", 10, 1)


def test_wrong_shapes_and_mismatched_sources(tmp_path):
    write_hkl_v2(tmp_path / "kitti_hkl" / "X_train.hkl", np.zeros((60, 64, 80, 3), np.uint8), SOURCES)
    with pytest.raises(UserError, match=r"frames of shape \(64, 80, 3\); expected \(128, 160, 3\)"):
        SPEC.open(tmp_path, "train", 10, 1)
    write_hkl_v2(tmp_path / "kitti_hkl" / "X_train.hkl", np.zeros((60, 128, 160, 3), np.uint8), SOURCES[:50])
    with pytest.raises(UserError, match="names 50 frames but .*X_train.hkl holds 60"):
        SPEC.open(tmp_path, "train", 10, 1)


def test_corrupt_files(kc_root):
    hkl = kc_root / "kitti_hkl" / "X_train.hkl"
    hkl.write_bytes(hkl.read_bytes()[:5000])
    with pytest.raises(UserError, match="cannot open .*X_train.hkl as HDF5"):
        SPEC.open(kc_root, "train", 10, 1)
    seq = kc_root / "caltech" / "set06" / "V001.seq"
    seq.write_bytes(seq.read_bytes()[:-3000])
    with pytest.raises(UserError, match="V001.seq is truncated: the header announces 70 frames"):
        SPEC.open(kc_root, "test", 10, 1)
    seq.write_bytes(b"\x00" * 2000)
    with pytest.raises(UserError, match="V001.seq is not a Norpix .seq file"):
        SPEC.open(kc_root, "test", 10, 1)


def test_corrupt_jpeg_inside_seq(tmp_path):
    path = write_seq(tmp_path / "caltech" / "set06" / "V000.seq", frames(40, 48, 64))
    data = bytearray(path.read_bytes())
    data[1024 + 4 + 2:1024 + 4 + 200] = bytes(198)  # wipe the first frame's JPEG headers, keep its start marker
    path.write_bytes(bytes(data))
    seq = SeqFile(path)
    from stbench_data_common import decode_image
    with pytest.raises(UserError, match="V000.seq frame 0"):
        decode_image(seq.jpeg(0), "RGB", what=f"{seq.path} frame 0")


@pytest.mark.slow
def test_cli_data_check_exits_2(kc_root):
    seq = kc_root / "caltech" / "set07" / "V000.seq"
    seq.write_bytes(seq.read_bytes()[:3000])
    line = assert_user_error("data", "check", "kitticaltech-10-1", "--data-root", kc_root)
    assert "set07/V000.seq is truncated" in line


def test_prepare_caltech_from_set_tars(tmp_path, capsys):
    """Caltech ships one tar per set (set06.tar holds set06/V000.seq ...); prepare keeps set06-set10."""
    import tarfile

    from stbench.cli import main

    videos = tmp_path / "videos"
    write_seq(videos / "set05" / "V000.seq", frames(40, 48, 64, seed=4))  # a training set: not copied
    write_seq(videos / "set06" / "V000.seq", frames(40, 48, 64, seed=1))
    write_seq(videos / "set06" / "V001.seq", frames(70, 48, 64, seed=2), gap=16)
    write_seq(videos / "set07" / "V000.seq", frames(20, 48, 64, seed=3))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    for name in ("set05", "set06", "set07"):
        with tarfile.open(downloads / f"{name}.tar", "w") as archive:
            archive.add(videos / name, arcname=name)
    root = tmp_path / "data"
    assert main(["data", "prepare", "kitticaltech-10-1", "--from", str(downloads), "--data-root", str(root)]) == 0
    assert "3 Caltech test videos (set06, set07)" in capsys.readouterr().out
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.seq")) == [
        "caltech/set06/V000.seq", "caltech/set06/V001.seq", "caltech/set07/V000.seq"]
    assert len(SPEC.open(root, "test", 10, 1)) == 3
    # a truncated video: an error, and no caltech/ folder left half-written
    (videos / "set06" / "V001.seq").write_bytes((videos / "set06" / "V001.seq").read_bytes()[:5000])
    again = tmp_path / "again"
    assert main(["data", "prepare", "kitticaltech-10-1", "--from", str(videos), "--data-root", str(again)]) == 2
    assert "set06/V001.seq in " in capsys.readouterr().err
    assert not again.exists()


def test_prepare_kitti_raw_drives_as_prednet(tmp_path, capsys):
    """Raw drive zips (four cameras each) -> kitti_hkl/: image_03 of the training drives, PredNet's resize."""
    import zipfile

    from PIL import Image

    from stbench.cli import main
    from stbench_data_kitticaltech.prepare import process_im

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    colour = {}
    for drive, count in (("2011_09_26_drive_0001_sync", 13), ("2011_09_26_drive_0002_sync", 24),
                         ("2011_09_26_drive_0104_sync", 12)):  # 0104 is one of PredNet's test drives
        with zipfile.ZipFile(downloads / f"{drive.replace('_sync', '')}_sync.zip", "w") as archive:
            images = frames(count, 75, 248, seed=len(colour))  # the raw frames' 375x1242 aspect, scaled down
            colour[drive] = images
            for camera in ("image_00", "image_01", "image_02", "image_03"):
                for index, image in enumerate(images):
                    shown = image[..., ::-1] if camera == "image_02" else image  # cameras differ
                    data = io.BytesIO()
                    Image.fromarray(shown).save(data, format="PNG")
                    archive.writestr(f"2011_09_26/{drive}/{camera}/data/{index:010d}.png", data.getvalue())
            archive.writestr(f"2011_09_26/{drive}/oxts/data/0000000000.txt", "49.0 8.4\n")
    root = tmp_path / "data"
    assert main(["data", "prepare", "kitticaltech-10-1", "--from", str(downloads), "--data-root", str(root)]) == 0
    assert "37 KITTI frames of 2 training drives" in capsys.readouterr().out
    with h5py.File(root / "kitti_hkl" / "X_train.hkl", "r") as handle:
        stored = handle["data_0"][()]
    assert stored.shape == (37, 128, 160, 3)
    assert np.array_equal(stored[13 + 5], process_im(colour["2011_09_26_drive_0002_sync"][5]))
    # process_im = scipy.misc.imresize's Pillow bilinear to height 128 (248 -> 423 wide), then columns 131..290
    resized = np.asarray(Image.fromarray(colour["2011_09_26_drive_0001_sync"][0]).resize((423, 128), Image.BILINEAR))
    assert np.array_equal(stored[0], resized[:, 131:291])
    train = SPEC.open(root, "train", 10, 1)
    assert len(train) == 1 + 2  # one 11-frame window of the 13-frame drive, two of the 24-frame one
