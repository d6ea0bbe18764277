"""ENSO plugin: a small CMIP_train.nc in the ICAR-ENSO layout, read through the spec and the CLI."""
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from stbench import UserError
from stbench.cli import main
from stbench.plugins import get_dataset
from stbench_data_common.testing import smoke_record as run_persistence

LAT = np.arange(-55, 61, 5)
LON = np.arange(0, 360, 5)


def truth(run, months):
    """The monthly series of one run: a value per month, constant over the grid."""
    return np.sin(np.arange(months) / 7 + run) + 0.01 * run


def write_fixture(root, years6=1, years5=1, lat=LAT, nan=False):
    """15 CMIP6 runs of `years6` rows and 17 CMIP5 runs of `years5` rows; row r of a run holds months 12r..12r+35."""
    rows = []
    for run, years in [(m, years6) for m in range(15)] + [(15 + m, years5) for m in range(17)]:
        series = truth(run, 12 * years + 24)
        rows += [series[12 * r:12 * r + 36] for r in range(years)]
    values = np.broadcast_to(np.array(rows, np.float32)[:, :, None, None], (len(rows), 36, len(lat), len(LON))).copy()
    values[..., LON < 95] = 99.0  # outside the Pacific crop: must never reach a clip
    if nan:
        values[-1, 5, 3, 30] = np.nan
    data = xr.Dataset({"sst": (("year", "month", "lat", "lon"), values)},
                      coords={"year": np.arange(1, len(rows) + 1), "month": np.arange(1, 37), "lat": lat, "lon": LON},
                      attrs={"stbench_cmip6_years": years6, "stbench_cmip5_years": years5})
    folder = Path(root) / "enso"
    folder.mkdir(parents=True, exist_ok=True)
    data.to_netcdf(folder / "CMIP_train.nc", encoding={"sst": {"zlib": True}})
    return folder / "CMIP_train.nc"


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


def test_cli_run(tmp_path):
    write_fixture(tmp_path / "data")  # 36 months per run: 11 clips each
    code, err, record = run_persistence("enso-12-14", tmp_path / "data", tmp_path / "out")
    assert code == 0, err
    assert record["status"] == "ok" and record["shape"] == [1, 24, 48]
    assert record["data"]["train"]["clips"] == 16 and record["data"]["test"]["clips"] == 8  # smoke caps 16 / 8
    assert record["test_sequences"] == 8 and set(record["metrics"]) >= {"mse", "mae", "rmse"}


def test_cli_data_check_and_exit_code(tmp_path, capsys):
    write_fixture(tmp_path)
    assert main(["data", "check", "enso-12-14", "--data-root", str(tmp_path)]) == 0
    assert "test: 11 clips for enso-12-14" in capsys.readouterr().out
    assert main(["data", "check", "enso-12-14", "--data-root", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "CMIP_train.nc not found" in err and "Traceback" not in err
