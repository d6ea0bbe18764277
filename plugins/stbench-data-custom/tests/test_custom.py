"""Custom datasets declared by YAML: the README example end to end, every source format, and bad files skipped."""
import json
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from stbench import plugins
from stbench.cli import main
from stbench.data import statistics_of
from stbench_data_common.testing import frames, write_image, write_video

README_YAML = """\
name: mydata
description: my lab's grey 64x64 videos
files:
  train: mydata/train.npy   # uint8 [N, T, C, H, W]; relative paths start at the data root
  test: mydata/test.npy
canonical_tasks: [mydata-10-10]
hparams_like: mmnist        # models use their Moving MNIST settings
"""


def test_readme_shows_this_example():
    readme = Path(__file__).resolve().parents[3] / "README.md"
    section = readme.read_text().split("### Your own data, without writing a plugin", 1)[1]
    assert "```yaml\n" + README_YAML + "```" in section


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    """An empty data root that stbench reads custom declarations from; the plugin registry reloads around it."""
    root = tmp_path / "data"
    (root / "custom").mkdir(parents=True)
    monkeypatch.setenv("STBENCH_DATA_ROOT", str(root))
    plugins.reset()
    yield root
    plugins.reset()


def declare(root, text, name="mydata"):
    (root / "custom" / f"{name}.yaml").write_text(textwrap.dedent(text))
    plugins.reset()


def moving_squares(count, length, size=64, channels=1, seed=0):
    """uint8 [N, T, C, H, W]: a bright square moving across a dark background, a different start per sequence."""
    rng = np.random.default_rng(seed)
    clips = np.full((count, length, channels, size, size), 20, np.uint8)
    for n in range(count):
        row, col = rng.integers(0, size - 16, 2)
        for t in range(length):
            top, left = (row + 2 * t) % (size - 12), (col + 3 * t) % (size - 12)
            clips[n, t, :, top:top + 12, left:left + 12] = 230
    return clips


def test_readme_example_end_to_end(data_root, tmp_path, capsys):
    (data_root / "mydata").mkdir()
    np.save(data_root / "mydata" / "train.npy", moving_squares(12, 20, seed=1))
    np.save(data_root / "mydata" / "test.npy", moving_squares(6, 20, seed=2))
    declare(data_root, README_YAML)

    assert main(["list", "datasets"]) == 0
    listed = capsys.readouterr().out
    assert "mydata" in listed and "kth" in listed

    assert main(["data", "check", "mydata-10-10", "--data-root", str(data_root)]) == 0
    report = capsys.readouterr().out
    assert "train: 12 clips of 20 frames" in report and "test: 6 clips of 20 frames" in report
    assert "native values 0.07843..0.902" in report  # 20/255 .. 230/255

    out = tmp_path / "out"
    code = main(["run", "--models", "persistence", "--tasks", "mydata-10-10", "--profile", "smoke",
                 "--data-root", str(data_root), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    records = [json.loads(p.read_text()) for p in (out / "runs").rglob("*.json")]
    assert len(records) == 1 and records[0]["status"] == "ok" and records[0]["shape"] == [1, 64, 64]
    assert records[0]["data"]["train"]["clips"] == 12 and records[0]["data"]["test"]["clips"] == 6
    # persistence repeats frame 10: its MSE is what the moving square leaves behind, summed over the frame
    test = moving_squares(6, 20, seed=2).astype(np.float64) / 255
    expected = ((test[:, 10:] - test[:, 9:10]) ** 2).sum(axis=(2, 3, 4)).mean()
    assert records[0]["metrics"]["mse"] == pytest.approx(expected, rel=1e-4)


def test_npz_hdf5_and_channels_last(data_root):
    clips = moving_squares(10, 12, size=32, channels=3, seed=3)
    np.savez_compressed(data_root / "all.npz", clips=clips.transpose(0, 1, 3, 4, 2))  # [N, T, H, W, C]
    with h5py.File(data_root / "all.h5", "w") as handle:
        handle.create_dataset("group/clips", data=clips)
    declare(data_root, """\
        name: squares-npz
        files: {path: all.npz, key: clips, layout: NTHWC}
        splits: {train: 0.8, test: 0.2}
        canonical_tasks: [squares-npz-4-4]
        """, "a")
    declare(data_root, """\
        name: squares-h5
        files: {path: all.h5, key: group/clips}
        splits: {train: 0.8, test: 0.2}
        stride: 2
        canonical_tasks: [squares-h5-4-4]
        """, "b")
    npz, h5 = plugins.get_dataset("squares-npz"), plugins.get_dataset("squares-h5")
    assert npz.shape == h5.shape == (3, 32, 32)
    train, test = npz.open(str(data_root), "train", 4, 4), npz.open(str(data_root), "test", 4, 4)
    assert (len(train), len(test)) == (8, 2)  # one 8-frame window per 12-frame sequence; sequences 0-7 / 8-9
    x, y = test[1]
    assert torch.allclose(torch.cat([x, y]), torch.from_numpy(clips[9, :8].astype(np.float32) / 255), atol=1e-6)
    windows = h5.open(str(data_root), "train", 4, 4)
    assert len(windows) == 8 * 3  # stride 2: starts 0, 2, 4
    x, _ = windows[4]  # sequence 1, start 2
    assert torch.allclose(x, torch.from_numpy(clips[1, 2:6].astype(np.float32) / 255), atol=1e-6)


def test_folders_of_videos_and_image_sequences(data_root):
    for index in range(3):
        video = [f for f in frames(15, 24, 32, seed=index)]
        write_video(data_root / "videos" / "train" / f"clip{index}.mp4", video, codec="ffv1")
        for number, frame in enumerate(video, start=1):
            write_image(data_root / "images" / "test" / f"seq{index}" / f"frame_{number}.png", frame)
    declare(data_root, """\
        name: film
        files:
          train: videos/train
          test: images/test
        frames: {size: [16, 16]}
        canonical_tasks: [film-5-5]
        """)
    spec = plugins.get_dataset("film")
    assert spec.shape == (3, 16, 16) and spec.value_range == (0.0, 1.0)
    train, test = spec.open(str(data_root), "train", 5, 5), spec.open(str(data_root), "test", 5, 5)
    assert (len(train), len(test)) == (3, 3)  # one 10-frame window per 15-frame sequence
    # lossless video and PNG frames of the same sequence read alike; frame_10 sorts after frame_9
    assert torch.equal(train[2][0], test[2][0]) and torch.equal(train[2][1], test[2][1])


def test_zscore_statistics_come_from_training_data(data_root):
    rng = np.random.default_rng(0)
    train = (280 + 5 * rng.standard_normal((6, 16, 1, 8, 8))).astype(np.float32)
    np.save(data_root / "t_train.npy", train)
    np.save(data_root / "t_test.npy", (283 + 5 * rng.standard_normal((2, 16, 1, 8, 8))).astype(np.float32))
    declare(data_root, """\
        name: temperature
        files: {train: t_train.npy, test: t_test.npy}
        value_range: null
        canonical_tasks: [temperature-8-8]
        """)
    spec = plugins.get_dataset("temperature")
    assert spec.value_range is None and spec.default_metrics == ("mse", "mae", "rmse")
    test = spec.open(str(data_root), "test", 8, 8)
    assert test.mean[0] == pytest.approx(float(train.mean()), rel=1e-6)
    assert test.std[0] == pytest.approx(float(train.std()), rel=1e-4)
    x, _ = test[0]
    native = statistics_of(spec, test).denormalize(x)
    assert torch.allclose(native, torch.from_numpy(np.load(data_root / "t_test.npy")[0, :8]), atol=1e-3)


def test_bad_declarations_are_one_line_and_skipped(data_root, capsys):
    np.save(data_root / "ok.npy", moving_squares(4, 20, size=32))
    good = "files: {path: ok.npy}\nsplits: {train: 0.5, test: 0.5}\n"
    declare(data_root, "name: fine\n" + good + "canonical_tasks: [fine-10-10]\n", "fine")
    declare(data_root, "name: typo\n" + good + "canonical_task: [typo-10-10]\n", "typo")
    declare(data_root, "name: broken\nfiles: [unclosed\n", "broken")
    declare(data_root, "name: kth\n" + good + "canonical_tasks: [kth-10-10]\n", "clash")
    declare(data_root, "name: missing\nfiles: {path: nowhere.npy}\nsplits: {train: 0.5, test: 0.5}\n"
                       "canonical_tasks: [missing-10-10]\n", "missing")
    assert main(["list", "datasets"]) == 0
    captured = capsys.readouterr()
    listed = captured.out
    assert "fine" in listed and "kth" in listed and "typo" not in listed and "missing" not in listed
    warnings = [line for line in captured.err.splitlines() if line.strip()]
    assert len(warnings) == 4, captured.err
    typo = next(line for line in warnings if "typo.yaml" in line)
    assert "unknown key canonical_task in the file; the known keys are name, description, files" in typo
    assert "skipped" in typo
    assert any("broken.yaml: not valid YAML at line" in line for line in warnings)
    assert any("'kth' is already a dataset of an installed plugin" in line for line in warnings)
    assert any("missing file " + str(data_root / "nowhere.npy") in line for line in warnings)
    assert plugins.get_dataset("kth").plugin == "kth"  # the plugin's dataset is untouched


@pytest.mark.parametrize("text, message", [
    ("name: My Data", "name must be lowercase"),
    ("name: d\nfiles: x.npz\nsplits: {train: 1}", "files.key must name the array inside x.npz"),
    ("name: d\nfiles: x.npy\nsplits: {train: 0.9, test: 0.2}", "add up to 1.1"),
    ("name: d\nfiles: x.npy\nsplits: {train: 1.0}\ncanonical_tasks: [d-1-1]", "a 'test' split is required"),
    ("name: d\nfiles: {train: x.npy, test: {path: y.npy, colour: 1}}\ncanonical_tasks: [d-1-1]",
     "unknown key colour in files.test; the known keys are path, key, layout"),
    ("name: d\nfiles: {train: x.npy, test: y.npy}\ncanonical_tasks: [other-1-1]", "not a task of d"),
    ("name: d\nfiles: {train: x.npy, test: y.npy}\ncanonical_tasks: [d-1-1]\nnormalise: minmax",
     "normalise must be one of range, zscore, none"),
])
def test_validation_messages(text, message):
    from stbench_data_custom import ConfigError, parse

    with pytest.raises(ConfigError, match=message) as error:
        parse(Path("/data/custom/d.yaml"), text)
    assert "\n" not in str(error.value) and "/data/custom/d.yaml" in str(error.value)


def test_every_example_in_the_plugin_readme_is_valid():
    from stbench_data_custom import parse

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = readme.split("```yaml\n")[1:]
    assert len(blocks) == 4
    for block in blocks:
        config = parse(Path("/data/custom/example.yaml"), block.split("```", 1)[0])
        assert config.canonical_tasks[0].startswith(config.name + "-")
