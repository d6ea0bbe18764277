"""Traffic4Cast plugin: tiny day files in the official <CITY>/training/*.h5 layout, read through the spec and the
CLI (clip counts, shapes, the check report and a smoke run on the same sample data are core's dataset contract
test)."""
import json

import numpy as np
import pytest

from stbench import UserError
from stbench.cli import main
from stbench.plugins import get_dataset
from stbench_data_traffic4cast.sample import write_fixture


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


def test_cli_data_check_and_exit_code(tmp_path, capsys):
    write_fixture(tmp_path)
    assert main(["data", "check", "traffic4cast-9-3", "--data-root", str(tmp_path)]) == 0
    assert "test: 3 clips for traffic4cast-9-3" in capsys.readouterr().out
    assert main(["data", "check", "traffic4cast-9-3", "--data-root", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "traffic4cast not found" in err and "Traceback" not in err
