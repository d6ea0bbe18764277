"""ENSO plugin: a small CMIP_train.nc in the ICAR-ENSO layout, read through the spec and the CLI (clip counts,
shapes, the check report and a smoke run on the same sample data are core's dataset contract test)."""
import numpy as np
import pytest
import torch

from stbench import UserError
from stbench.cli import main
from stbench.plugins import get_dataset
from stbench_data_enso.sample import truth, write_fixture


def test_open_folds_runs_and_splits(tmp_path):
    write_fixture(tmp_path, years6=4, years5=2)  # 72 months per CMIP6 run, 48 per CMIP5 run
    spec = get_dataset("enso")
    train, val, test = (spec.open(str(tmp_path), split, 12, 14) for split in ("train", "val", "test"))
    per6, per5 = 72 - 26 + 1, 48 - 26 + 1
    assert (len(train), len(val), len(test)) == (15 * per6 + 15 * per5, per5, per5)
    x, y = test[5]
    assert x.shape == (12, 1, 24, 48) and y.shape == (14, 1, 24, 48)
    native = spec.denormalize(torch.cat([x, y])).numpy()
    assert np.allclose(native[:, 0, 7, 11], truth(31, 48)[5:31], atol=1e-4)  # CMIP5 run 17 = run index 31
    assert np.allclose(native, native[:, :, :1, :1], atol=1e-5)  # the crop dropped every longitude < 95
    x, y = train[15 * per6 + per5 + 2]  # second CMIP5 run, third clip
    assert np.allclose(spec.denormalize(x).numpy()[:, 0, 0, 0], truth(16, 48)[2:14], atol=1e-4)
    assert "test: 1 run(s), 48 months" in spec.check(str(tmp_path))


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="enso/CMIP_train.nc not found"):
        get_dataset("enso").open(str(tmp_path), "train", 12, 14)


def test_corrupt_file_and_nan(tmp_path):
    path = write_fixture(tmp_path)
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(UserError, match="looks damaged"):
        get_dataset("enso").open(str(tmp_path), "test", 12, 14)
    write_fixture(tmp_path / "nan", nan=True)
    with pytest.raises(UserError, match="CMIP5 run 17 holds NaN"):
        get_dataset("enso").open(str(tmp_path / "nan"), "test", 12, 14)


def test_wrong_shape(tmp_path):
    write_fixture(tmp_path, lat=np.arange(-55, 6, 5))
    with pytest.raises(UserError, match=r"expected \(32, 36, 24, 48\)"):
        get_dataset("enso").open(str(tmp_path), "train", 12, 14)


def test_cli_data_check_and_exit_code(tmp_path, capsys):
    write_fixture(tmp_path)
    assert main(["data", "check", "enso-12-14", "--data-root", str(tmp_path)]) == 0
    assert "test: 11 clips for enso-12-14" in capsys.readouterr().out
    assert main(["data", "check", "enso-12-14", "--data-root", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "CMIP_train.nc not found" in err and "Traceback" not in err
