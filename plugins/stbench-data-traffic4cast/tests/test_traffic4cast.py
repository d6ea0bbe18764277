"""Traffic4Cast plugin: tiny day files in the official <CITY>/training/*.h5 layout, read through the spec and the CLI."""
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from stbench import UserError
from stbench.cli import main
from stbench.plugins import get_dataset
from stbench_data_common.testing import smoke_record as run_persistence

FRAMES = 33  # clip starts 0, 10, 20 (< 33 - 12) -> 3 clips per day file


def write_day(path, seed, size=(140, 120), frames=FRAMES, channels=8):
    rng = np.random.default_rng(seed)
    array = np.zeros((frames,) + size + (channels,), np.uint8)
    array[:, ::7, ::5] = rng.integers(0, 256, array[:, ::7, ::5].shape)  # sparse roads
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("array", data=array, compression="gzip", chunks=(1,) + size + (channels,))
    return array


def write_fixture(root, **kwargs):
    """9 day files in two cities: sorted, the 9th is the test day; the other 8 train (24 clips)."""
    folder = Path(root) / "traffic4cast"
    days = {}
    for i in range(9):
        city = "ANTWERP" if i < 5 else "BANGKOK"
        path = folder / city / "training" / f"2019-01-{i + 1:02d}_{city}_8ch.h5"
        days[path] = write_day(path, i, **kwargs)
    return folder, days


def test_open_crops_and_strides(tmp_path):
    folder, days = write_fixture(tmp_path)
    spec = get_dataset("traffic4cast")
    train, test = spec.open(str(tmp_path), "train", 9, 3), spec.open(str(tmp_path), "test", 9, 3)
    assert (len(train), len(test)) == (24, 3)
    last = sorted(days)[-1]
    x, y = test[2]  # third clip of the test day: frames 20..31
    assert x.shape == (9, 8, 128, 112) and y.shape == (3, 8, 128, 112)
    crop = days[last][20:32, 6:134, 4:116].transpose(0, 3, 1, 2)
    assert np.allclose(np.concatenate([x.numpy(), y.numpy()]) * 255, crop, atol=1e-3)
    # annotation lists (PredBench's split) take precedence over the sorted-day rule
    (folder / "annotations").mkdir()
    names = [str(p.relative_to(folder)) for p in sorted(days)]
    (folder / "annotations" / "train.json").write_text(json.dumps(names[:2]))
    (folder / "annotations" / "test.json").write_text(json.dumps(names[2:3]))
    assert len(spec.open(str(tmp_path), "train", 9, 3)) == 6 and len(spec.open(str(tmp_path), "val", 9, 3)) == 3
    assert "train: 2 day files, 6 clips" in spec.check(str(tmp_path))


def test_missing_folder_and_listed_file(tmp_path):
    with pytest.raises(UserError, match="traffic4cast not found"):
        get_dataset("traffic4cast").open(str(tmp_path), "train", 9, 3)
    folder, _ = write_fixture(tmp_path)
    (folder / "annotations").mkdir()
    (folder / "annotations" / "test.json").write_text(json.dumps(["MOSCOW/training/2020-01-01_MOSCOW_8ch.h5"]))
    with pytest.raises(UserError, match="1 missing day file"):
        get_dataset("traffic4cast").open(str(tmp_path), "test", 9, 3)


def test_corrupt_file(tmp_path):
    _, days = write_fixture(tmp_path)
    path = sorted(days)[0]
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(UserError, match="looks damaged"):
        get_dataset("traffic4cast").open(str(tmp_path), "train", 9, 3)


def test_wrong_shape(tmp_path):
    write_fixture(tmp_path, channels=3)
    with pytest.raises(UserError, match=r"'array' has shape \(33, 140, 120, 3\)"):
        get_dataset("traffic4cast").open(str(tmp_path), "train", 9, 3)


def test_cli_run(tmp_path):
    write_fixture(tmp_path / "data")
    code, err, record = run_persistence("traffic4cast-9-3", tmp_path / "data", tmp_path / "out")
    assert code == 0, err
    assert record["status"] == "ok" and record["shape"] == [8, 128, 112]
    assert record["data"]["train"]["clips"] == 16 and record["data"]["test"]["clips"] == 3  # smoke: <= 16 train
    assert record["test_sequences"] == 3 and set(record["metrics"]) >= {"mse", "mae", "rmse", "ssim", "psnr"}


def test_cli_data_check_and_exit_code(tmp_path, capsys):
    write_fixture(tmp_path)
    assert main(["data", "check", "traffic4cast-9-3", "--data-root", str(tmp_path)]) == 0
    assert "test: 3 clips for traffic4cast-9-3" in capsys.readouterr().out
    assert main(["data", "check", "traffic4cast-9-3", "--data-root", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "traffic4cast not found" in err and "Traceback" not in err
