"""Kinetics-400: tiny MP4 videos and CSV lists in the CVDF / OpenSTL layout, through the plugin and the CLI
(clip counts, shapes, the check report and a smoke run on the sample data are core's dataset contract test)."""
import av
import numpy as np
import pytest
import torch

from stbench import UserError
from stbench_data_common import resize_like_opencv
from stbench_data_common.testing import assert_user_error
from stbench_data_kinetics import SPEC
from stbench_data_kinetics.reader import crop_offsets, evaluation_indices, resized_size, training_indices
from stbench_data_kinetics.sample import HEADER, VIDEOS, frame, video_name, write_h264, write_root


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_root(tmp_path_factory.mktemp("kinetics"))


def decoded(root, youtube_id):
    """Every frame of one made video, decoded by PyAV directly."""
    index, split = list(VIDEOS).index(youtube_id), VIDEOS[youtube_id][3]
    with av.open(str(root / "kinetics400" / split / video_name(youtube_id, index))) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def frame_numbers(native):
    return [round((float(g) * 255 - 20) / 6) for g in native[:, 1].mean(dim=(1, 2))]


def native(dataset, index):
    return SPEC.denormalize(torch.cat(dataset[index]))


def test_missing_videos_are_described_and_clips_imagenet_normalised(root):
    train, test = SPEC.open(root, "train", 4, 4), SPEC.open(root, "test", 4, 4)
    assert "2 of 4 videos present" in train.description  # missing and under-1-KB videos are left out
    clip = torch.cat(test[0])
    assert float(clip.min()) < -0.5  # ImageNet-normalised, not [0, 1]
    values = SPEC.denormalize(clip)
    assert 0.0 <= float(values.min()) and float(values.max()) <= 1.0
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    assert torch.allclose(clip, (values - mean) / std, atol=1e-6)


def test_frame_sampling(root):
    test = SPEC.open(root, "test", 4, 4)
    assert frame_numbers(native(test, 0)) == [0, 2, 4, 6, 8, 10, 12, 14]
    assert frame_numbers(native(test, 1)) == [0, 2, 4, 6, 8, 8, 8, 8]  # 9 frames: the last one repeats
    train = SPEC.open(root, "train", 4, 4)
    torch.manual_seed(0)
    seen = set()
    for _ in range(6):
        numbers = frame_numbers(native(train, 0))
        assert np.diff(numbers).tolist() == [2, 2, 2, 3, 2, 2, 2]  # linspace over 16 frames, truncated
        seen.add(numbers[0])
    assert len(seen) > 1 and seen <= set(range(0, 40 - 16))
    assert frame_numbers(native(train, 1)) == [0, 2, 4, 7, 9, 11, 11, 11]  # 12 frames <= 16: whole video
    assert frame_numbers(native(SPEC.open(root, "val", 4, 4), 0))[0] in range(0, 20 - 16)  # val samples as train


def test_resize_and_crop_geometry():
    assert resized_size(100, 134) == (256, 343) and crop_offsets(256, 343) == (0, 44)  # round(43.5) = 44
    assert resized_size(80, 60) == (341, 256) and crop_offsets(341, 256) == (42, 0)  # round(42.5) = 42
    assert resized_size(256, 340) == (256, 340) and resized_size(720, 1280) == (256, 455)
    assert resized_size(256, 256) == (256, 256) and crop_offsets(256, 256) == (0, 0)
    with pytest.raises(UserError, match="smaller than the 256x256 crop"):
        crop_offsets(255, 300)


def test_sampling_formulas():
    assert evaluation_indices(30, 8) == [0, 2, 4, 6, 8, 10, 12, 14] and evaluation_indices(3, 4) == [0, 2, 2, 2]
    assert training_indices(12, 8) == [0, 2, 4, 7, 9, 11, 11, 11] and training_indices(1, 4) == [0, 0, 0, 0]
    generator = torch.Generator().manual_seed(3)
    starts = {training_indices(100, 8, generator)[0] for _ in range(2000)}
    assert starts == set(range(0, 100 - 16))  # end drawn in [16, 100): window start 0 .. 83


def test_resize_crop_and_orientation(root):
    train = SPEC.open(root, "train", 4, 4)
    frames = decoded(root, "abc-DEF_123")
    clip = train.read(0, [5, 7])  # [0, 1] values
    stored = torch.from_numpy(np.stack([frames[5], frames[7]])).permute(0, 3, 1, 2)
    resized = resize_like_opencv(stored, (256, 343))  # int(256 * 134 / 100) = 343
    assert torch.equal(clip, resized[..., :, 44:300] / 255)
    assert not torch.equal(clip, resized[..., :, 43:299] / 255)
    portrait = SPEC.open(root, "test", 4, 4).read(0, [0])
    stored = torch.from_numpy(decoded(root, "testVideo01")[0]).permute(2, 0, 1)
    assert torch.equal(portrait[0], resize_like_opencv(stored, (341, 256))[:, 42:298] / 255)
    assert bool((clip[:, 0, 0] > clip[:, 0, -1]).all()) and bool((clip[:, 2, :, -1] > clip[:, 2, :, 0]).all())
    written = torch.from_numpy(frame(5, 100, 134)).permute(2, 0, 1)
    expected = resize_like_opencv(written, (256, 343))[..., 44:300] / 255
    assert float((clip[0] - expected).abs().mean()) < 3 / 255  # H.264 yuv420p: chroma at half resolution


def test_missing_data_and_bad_lists(tmp_path):
    with pytest.raises(UserError, match="missing folder .*kinetics400 .*cvdfoundation/kinetics-dataset"):
        SPEC.open(tmp_path, "train", 4, 4)
    (tmp_path / "kinetics400" / "annotations").mkdir(parents=True)
    with pytest.raises(UserError, match="missing file .*kinetics400/annotations/test.csv"):
        SPEC.open(tmp_path, "test", 4, 4)
    csv = tmp_path / "kinetics400" / "annotations" / "test.csv"
    csv.write_text(HEADER + "abseiling,xyz,1,11,test\n")
    with pytest.raises(UserError, match="missing folder .*kinetics400/test "):
        SPEC.open(tmp_path, "test", 4, 4)
    (tmp_path / "kinetics400" / "test").mkdir()
    with pytest.raises(UserError, match="none of the 1 videos test.csv lists is under"):
        SPEC.open(tmp_path, "test", 4, 4)
    csv.write_text("youtube_id,start\nxyz,1\n")
    with pytest.raises(UserError, match="must start with the header"):
        SPEC.open(tmp_path, "test", 4, 4)
    csv.write_text(HEADER + "abseiling,xyz,one,11,test\n")
    with pytest.raises(UserError, match="test.csv:2: expected label,youtube_id"):
        SPEC.open(tmp_path, "test", 4, 4)
    with pytest.raises(UserError, match="splits train, val, test, not 'dev'"):
        SPEC.open(tmp_path, "dev", 4, 4)


def test_csv_without_label_and_validate_column(tmp_path):
    """Columns are found by name (DeepMind's test lists have no label); a split column that names no folder falls
    back to the split's own folder."""
    base = tmp_path / "kinetics400"
    write_h264(base / "val" / "vid_000001_000011.mp4", [frame(t, 48, 64) for t in range(20)])
    (base / "annotations").mkdir(parents=True)
    (base / "annotations" / "val.csv").write_text("youtube_id,time_start,time_end,split\nvid,1,11,validate\n")
    assert len(SPEC.open(tmp_path, "val", 4, 4)) == 1


def test_damaged_video(tmp_path):
    root = write_root(tmp_path)
    path = root / "kinetics400" / "test" / video_name("testVideo01", 5)
    path.write_bytes(b"\x00\x01" * 4000)
    with pytest.raises(UserError, match="cannot decode the video .*testVideo01.* replace it"):
        SPEC.open(root, "test", 4, 4)[0]


@pytest.mark.slow
def test_cli_data_check_missing_is_one_line(tmp_path):
    line = assert_user_error("data", "check", "kinetics-4-4", "--data-root", tmp_path)
    assert "kinetics400" in line and "'stbench data check kinetics-4-4'" in line


def test_matches_openstl_clips(tmp_path, monkeypatch):
    """The clips OpenSTL's KineticsDataset made from one video (tests/fixtures/README.md): the same frames, resize,
    crop and normalisation, value for value."""
    from pathlib import Path

    stored = np.load(Path(__file__).parent / "fixtures" / "openstl_kinetics.npz")
    base = tmp_path / "kinetics400"
    for split in ("train", "test"):
        (base / split).mkdir(parents=True)
        (base / split / "fixtureVid1_000003_000013.mp4").write_bytes(stored["video"].tobytes())
        (base / "annotations").mkdir(exist_ok=True)
        (base / "annotations" / f"{split}.csv").write_text(HEADER + f"abseiling,fixtureVid1,3,13,{split}\n")
    clips = {"test_clip": torch.cat(SPEC.open(tmp_path, "test", 4, 4)[0])}
    train = SPEC.open(tmp_path, "train", 4, 4)
    monkeypatch.setattr(torch, "randint", lambda low, high, size=(), generator=None: torch.tensor(21))  # OpenSTL's draw
    assert train.indices(0) == [5, 7, 9, 11, 14, 16, 18, 20]
    clips["train_clip_end21"] = torch.cat(train[0])
    for key, clip in clips.items():
        native = (SPEC.denormalize(clip) * 255).round().to(torch.uint8)[:, :, ::3, ::3]
        assert torch.equal(native, torch.from_numpy(stored[key])), key
        assert torch.equal(clip[:, :, ::37, ::37], torch.from_numpy(stored[key + "_normalised"])), key
