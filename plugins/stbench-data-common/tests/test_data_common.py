"""The shared readers: clip windows, list files, frame decoding, lazy arrays, the spec helper."""
import pickle

import numpy as np
import pytest
import torch

from stbench import UserError
from stbench_data_common import (LazyNpy, check_length, decode_image, end_aligned_starts, frames_present,
                                 read_clip_list, resize, resolve_split, runs, video_spec)
from stbench_data_common.testing import frames, jpeg_bytes, write_image


def test_end_aligned_windows():
    assert end_aligned_starts(35, 30, 30) == [5]
    assert end_aligned_starts(35, 30, 3) == [2, 5]
    assert end_aligned_starts(29, 30, 30) == []
    assert end_aligned_starts(25, 5, 5, fits=lambda start, end: not start <= 12 <= end) == [2, 7, 15, 20]


def test_runs():
    assert runs(list("aaabbc")) == [("a", 0, 3), ("b", 3, 2), ("c", 5, 1)]
    assert runs([]) == []


def test_clip_lists(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("images/S1_A.1_,1276,1346\n\nimages/S1_A.1_,176\n")
    assert read_clip_list(path, "") == [("images/S1_A.1_", 1276), ("images/S1_A.1_", 176)]
    path.write_text("")
    with pytest.raises(UserError, match="lists no clips"):
        read_clip_list(path, "")
    with pytest.raises(UserError, match="missing split file .*nope.txt; get it"):
        read_clip_list(tmp_path / "nope.txt", "get it")


def test_decode_modes_and_errors(tmp_path):
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0], rgb[..., 1] = 200, 50
    path = write_image(tmp_path / "a.png", rgb)
    assert decode_image(path, "RGB").shape == (4, 6, 3)
    assert decode_image(path, "first")[..., 0].tolist() == rgb[..., 0].tolist()
    assert decode_image(path, "L").shape == (4, 6, 1)
    assert decode_image(jpeg_bytes(frames(1, 8, 8)[0]), "RGB", what="x").shape == (8, 8, 3)
    with pytest.raises(UserError, match="missing frame .*b.png"):
        decode_image(tmp_path / "b.png")
    with pytest.raises(UserError, match="corrupt or truncated image seq frame 3"):
        decode_image(b"\xff\xd8\xff\xe0 not really", what="seq frame 3")


def test_resize_keeps_size_and_range():
    clip = torch.rand(2, 3, 8, 8) * 255
    assert resize(clip, (8, 8)) is clip
    out = resize(clip, (16, 12), mode="bicubic")
    assert out.shape == (2, 3, 16, 12) and float(out.min()) >= 0 and float(out.max()) <= 255


def test_splits_and_lengths():
    spec = video_spec(name="toy", shape=(1, 4, 4), open=None, max_length=6, layout="", canonical_tasks=("toy-2-2",))
    assert (spec.value_range, tuple(spec.default_metrics)) == ((0.0, 1.0), ("mse", "mae", "ssim", "psnr"))
    assert resolve_split("toy", "val") == "test"
    with pytest.raises(UserError, match="splits train and test, not 'dev'"):
        resolve_split("toy", "dev")
    assert check_length(spec, 3, 3) == 6
    with pytest.raises(UserError, match="at most 6 frames"):
        check_length(spec, 4, 3)


def test_frames_present(tmp_path):
    write_image(tmp_path / "v" / "1.png", frames(1, 4, 4)[0])
    write_image(tmp_path / "v" / "2.jpg", frames(1, 4, 4)[0])
    wanted = [[tmp_path / "v" / f"{n}.png", tmp_path / "v" / f"{n}.jpg"] for n in (1, 2)]
    assert frames_present("toy", "train", wanted, "") == "train: all 2 frames named by train.txt exist"
    with pytest.raises(UserError, match="1 of the 3 frames named by test.txt are missing, e.g. .*v/3.png; fix"):
        frames_present("toy", "test", wanted + [[tmp_path / "v" / "3.png"]], "fix")


def test_lazy_npy_pickles_without_data(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(1000))
    lazy = LazyNpy(tmp_path / "a.npy")
    assert int(lazy.array[10]) == 10
    copy = pickle.loads(pickle.dumps(lazy))
    assert len(pickle.dumps(lazy)) < 500 and int(copy.array[999]) == 999


@pytest.mark.parametrize("name, codec", [("clip.avi", "mpeg4"), ("clip.mp4", "mpeg4"), ("clip.mkv", "ffv1")])
def test_video_clips_after_seeking_equal_counting_from_the_start(tmp_path, name, codec):
    import av

    from stbench_data_common import decode_frames, frame_count
    from stbench_data_common.testing import write_video

    path = write_video(tmp_path / name, frames(70, 24, 32, seed=4), codec=codec)
    with av.open(str(path)) as container:
        every = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert frame_count(path) == len(every) == 70
    for start in (0, 1, 11, 12, 13, 37, 60):
        clip = decode_frames(path, start, 10)
        assert all(np.array_equal(a, b) for a, b in zip(clip, every[start:start + 10])), start
    with pytest.raises(UserError, match="ends after 70 frames"):
        decode_frames(path, 65, 10)
    from stbench_data_common.video import _seeked

    with av.open(str(path)) as container:  # the seek is really taken (not the count-from-the-start fallback)
        assert len(_seeked(container, container.streams.video[0], 37, 10, "RGB")) == 10


def test_resize_like_opencv_is_bit_exact():
    from pathlib import Path

    from stbench_data_common import resize_like_opencv

    stored = np.load(Path(__file__).parent / "fixtures" / "opencv_inter_linear.npz")
    image = torch.from_numpy(stored["image"]).permute(2, 0, 1)
    sizes = [tuple(int(n) for n in key.split("_")[1].split("x")) for key in stored.files if key != "image"]
    assert len(sizes) == 5
    for size in sizes:
        ours = resize_like_opencv(image, size)
        expected = torch.from_numpy(stored[f"resized_{size[0]}x{size[1]}"]).permute(2, 0, 1).float()
        assert ours.dtype == torch.float32 and torch.equal(ours, expected), size
    # a batch of frames resizes frame by frame; the float resize differs from OpenCV's fixed point
    batch = torch.stack([image, 255 - image])
    assert torch.equal(resize_like_opencv(batch, (12, 16))[1], resize_like_opencv(255 - image, (12, 16)))
    assert not torch.equal(resize(image[None].float(), (30, 40))[0], resize_like_opencv(image, (30, 40)))


def test_sample_frames_start():
    from stbench_data_common import sample_frames_start

    assert [sample_frames_start(n, 12, False) for n in (12, 13, 30, 31)] == [0, 1, 9, 10]
    torch.manual_seed(0)
    drawn = {sample_frames_start(30, 12, True) for _ in range(200)}
    assert drawn == set(range(19))
    with pytest.raises(ValueError):
        sample_frames_start(11, 12, False)


def test_read_json(tmp_path):
    from stbench_data_common import read_json

    path = tmp_path / "a.json"
    path.write_text('{"x": 3}')
    assert read_json(path, "the split", "get it") == {"x": 3}
    with pytest.raises(UserError, match=r"holds a JSON dict; expected a list \(the split\)"):
        read_json(path, "the split", "get it", kind=list)
    path.write_text("{broken")
    with pytest.raises(UserError, match="a.json is not valid JSON"):
        read_json(path, "the split", "get it")
    with pytest.raises(UserError, match=r"missing file .*nope.json \(the split\); get it"):
        read_json(tmp_path / "nope.json", "the split", "get it")


def test_describe_split_reports_native_values():
    """value_range is the native range: a dataset normalised with mean / std is de-normalised before the check."""
    from stbench import Clips, parse_task
    from stbench_data_common import describe_split

    class Normalised(Clips):
        def __len__(self):
            return 3

        def __getitem__(self, index):
            native = torch.full((4, 1, 2, 2), 0.25 * index)
            normalised = (native - 0.5) / 0.25  # -2 .. 0: outside [0, 1] until de-normalised
            return normalised[:2], normalised[2:]

    spec = video_spec(name="toy", shape=(1, 2, 2), open=lambda root, split, t_in, t_out: Normalised(), max_length=4,
                      layout="", canonical_tasks=("toy-2-2",), mean=0.5, std=0.25)
    assert "values 0.000..0.500" in describe_split(spec, "unused", "test", parse_task("toy-2-2"))


def test_resize_like_opencv_window():
    """A window of the resized frame (a crop that follows) equals the same part of the whole resize."""
    from pathlib import Path

    from stbench_data_common import resize_like_opencv

    stored = np.load(Path(__file__).parent / "fixtures" / "opencv_inter_linear.npz")
    image = torch.from_numpy(stored["image"]).permute(2, 0, 1)
    expected = torch.from_numpy(stored["resized_90x122"]).permute(2, 0, 1).float()
    assert torch.equal(resize_like_opencv(image, (90, 122), window=(5, 17, 64, 80)), expected[:, 5:69, 17:97])
    assert torch.equal(resize_like_opencv(image, (45, 61), window=(1, 2, 3, 4)), image[:, 1:4, 2:6].float())
