"""Weather plugin: tiny yearly 2m_temperature netCDF files in WeatherBench's layout, read through the spec and the
CLI (clip counts, shapes, the check report and a smoke run on the same sample data are core's dataset contract
test)."""
import numpy as np
import pytest
from torch.utils.data import Subset

from stbench import UserError
from stbench.cli import main
from stbench.data import statistics_of
from stbench.plugins import get_dataset
from stbench_data_weather.sample import LAT, write_fixture


def test_open_daily_clips_zscored_with_train_statistics(tmp_path):
    _, parts = write_fixture(tmp_path)
    spec = get_dataset("weather")
    train, test = spec.open(str(tmp_path), "train", 12, 12), spec.open(str(tmp_path), "test", 12, 12)
    val = spec.open(str(tmp_path), "val", 12, 12)  # WeatherBench's 2016, the declared validation split
    assert (len(train), len(val), len(test)) == (6, 2, 4) and spec.validation == "val"
    assert val.mean == train.mean
    hourly = np.concatenate([parts[2014][2], parts[2015][2]])
    daily = hourly[0:len(hourly) - 1:24]
    assert (spec.mean, spec.std) == (0.0, 1.0), "the registered spec is never changed"
    assert train.mean == test.mean and train.std == test.std  # both from the training years
    assert np.isclose(train.mean[0], daily.mean(), atol=1e-3) and np.isclose(train.std[0], daily.std(), atol=1e-3)
    spec = statistics_of(spec, Subset(train, [0, 1]))
    x, y = train[2]
    assert x.shape == (12, 1, 32, 64) and y.shape == (12, 1, 32, 64)
    assert np.allclose(spec.denormalize(x).numpy()[:, 0], daily[2:14], atol=1e-3)
    assert np.allclose(spec.denormalize(y).numpy()[:, 0], daily[14:26], atol=1e-3)
    x, _ = test[3]
    assert np.allclose(spec.denormalize(x).numpy()[:, 0], parts[2017][2][3 * 24:15 * 24:24], atol=1e-3)
    report = spec.check(str(tmp_path))
    assert "train 2010-2015: 30 daily frames of 32x64, 6 clips of 12+12" in report
    assert "val 2016: 26 daily frames" in report and "test 2017-2018: 28 daily frames" in report
    assert "normalisation (train years): mean" in report and " K, std " in report


def test_missing_folder(tmp_path):
    with pytest.raises(UserError, match="2m_temperature not found") as error:
        get_dataset("weather").open(str(tmp_path), "train", 12, 12)
    message = str(error.value)
    assert "\n" not in message and str(tmp_path.resolve() / "weather_5.625deg") in message
    assert "WeatherBench" in message and "stbench data check weather-12-12" in message


@pytest.mark.parametrize("folder", ["weather_5_625deg", "weather"])
def test_openstl_folder_names(tmp_path, folder):
    # OpenSTL's dataloader_weather.py looks for weather_5_625deg, then weather
    write_fixture(tmp_path)
    (tmp_path / "weather_5.625deg").rename(tmp_path / folder)
    spec = get_dataset("weather")
    assert (len(spec.open(str(tmp_path), "train", 12, 12)), len(spec.open(str(tmp_path), "test", 12, 12))) == (6, 4)
    assert spec.image_origin == "lower"  # latitudes ascend: row 0 is the South


def test_north_to_south_files_are_flipped(tmp_path):
    write_fixture(tmp_path / "a")
    write_fixture(tmp_path / "b", lat=LAT[::-1])
    spec = get_dataset("weather")
    x_a, _ = spec.open(str(tmp_path / "a"), "test", 12, 12)[0]
    x_b, _ = spec.open(str(tmp_path / "b"), "test", 12, 12)[0]
    assert np.allclose(x_a.numpy(), x_b.numpy(), atol=1e-5)


def test_prepare_from_the_weatherbench_zip(tmp_path, capsys):
    import zipfile

    folder, _ = write_fixture(tmp_path / "made")
    archive = tmp_path / "2m_temperature_5.625deg.zip"
    with zipfile.ZipFile(archive, "w") as handle:  # WeatherBench's zip holds the yearly files at its top
        for path in sorted(folder.iterdir()):
            handle.write(path, path.name)
    root = tmp_path / "data"
    assert main(["data", "prepare", "weather-12-12", "--from", str(archive), "--data-root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "5 yearly files (2009-2017)" in out and "absent: 2010, 2011" in out
    assert sorted(p.name for p in (root / "weather_5.625deg" / "2m_temperature").iterdir()) == sorted(
        p.name for p in folder.iterdir())
    assert len(get_dataset("weather").open(str(root), "test", 12, 12)) == 4
    # a damaged year: an error and no half-made folder
    bad = tmp_path / "bad"
    bad.mkdir()
    for path in folder.iterdir():
        (bad / path.name).write_bytes(path.read_bytes()[:2000] if "2015" in path.name else path.read_bytes())
    assert main(["data", "prepare", "weather-12-12", "--from", str(bad), "--data-root", str(tmp_path / "r2")]) == 2
    assert "2m_temperature_2015_5.625deg.nc in" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()


def test_corrupt_file(tmp_path):
    folder, parts = write_fixture(tmp_path)
    path = parts[2015][0]
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(UserError, match="looks damaged"):
        get_dataset("weather").open(str(tmp_path), "train", 12, 12)


def test_wrong_grid_and_variable(tmp_path):
    write_fixture(tmp_path, lat=np.linspace(-80, 80, 16))
    with pytest.raises(UserError, match=r"shape \(48, 16, 64\)"):
        get_dataset("weather").open(str(tmp_path), "train", 12, 12)
    write_fixture(tmp_path / "other", variable="z")
    with pytest.raises(UserError, match="no variable 't2m'"):
        get_dataset("weather").open(str(tmp_path / "other"), "train", 12, 12)


def test_cli_data_check_and_exit_code(tmp_path, capsys):
    write_fixture(tmp_path)
    assert main(["data", "check", "weather-12-12", "--data-root", str(tmp_path)]) == 0
    assert "test: 4 clips for weather-12-12" in capsys.readouterr().out
    assert main(["data", "check", "weather-12-12", "--data-root", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "2m_temperature not found" in err and "Traceback" not in err


def test_unprepared_download_is_named(tmp_path):
    # the yearly files unzipped straight into weather_5.625deg/ (no 2m_temperature/ folder): prepare them
    folder, _ = write_fixture(tmp_path / "made")
    target = tmp_path / "data" / "weather_5.625deg"
    target.mkdir(parents=True)
    for path in folder.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    with pytest.raises(UserError, match="run 'stbench data prepare weather-12-12 --from .*weather_5.625deg'"):
        get_dataset("weather").open(str(tmp_path / "data"), "train", 12, 12)
