"""Every WeatherBench variable set and resolution: tiny yearly netCDF files per variable in WeatherBench's layout
(single-level and pressure-level, at 5.625, 2.8125 and 1.40625 degrees) read through the registered specs."""
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from stbench import UserError
from stbench.cli import main
from stbench.data import statistics_of
from stbench.plugins import get_dataset, resolve_task
from stbench.tasks import parse_task
from stbench_data_weather import DATASETS, GRIDS, LEVELS, PREDBENCH_MEAN, PREDBENCH_STD, SETS, reader

OFFSET = {"t2m": 280.0, "u10": 1.0, "v10": -2.0, "tcc": 0.5, "tp": 0.001, "z": 50000.0, "t": 250.0, "r": 50.0,
          "u": 10.0, "v": -3.0}


def native(variable, times, degrees="5.625", levels=None):
    """The made field: a daily cycle and a slow drift in time, latitude / 100 and longitude / 1000 in space and
    level / 10 per pressure level, so every value says where and when it is (rows south to north)."""
    grid = GRIDS[degrees]
    lat, lon = np.array(grid.latitudes), np.arange(grid.cols) * float(degrees)
    hours = ((pd.DatetimeIndex(times) - pd.Timestamp("2000-01-01")).total_seconds().to_numpy() / 3600)[:, None, None]
    field = OFFSET[variable] + np.sin(hours / 24 * 2 * np.pi) + 0.01 * hours + lat[None, :, None] / 100 \
        + lon[None, None, :] / 1000
    if levels is None:
        return field[:, None].astype(np.float32)
    return (field[:, None] + np.asarray(levels, float)[None, :, None, None] / 10).astype(np.float32)


def write(root, folder, variable, year, start="01-01", hours=24, degrees="5.625", levels=None, scalar_level=None,
          hpa=False, base=None, descending=False, compress=False):
    """One WeatherBench yearly file: ``<base>/<folder>/<folder>[hPa]_<year>_<res>deg.nc``."""
    grid = GRIDS[degrees]
    times = pd.date_range(f"{year}-{start}", periods=hours, freq="h")
    lat, lon = np.array(grid.latitudes), np.arange(grid.cols) * float(degrees)
    data = native(variable, times, degrees, levels if scalar_level is None else (scalar_level,))
    if levels is None:
        data, dims = data[:, 0], ("time", "lat", "lon")
    else:
        dims = ("time", "level", "lat", "lon")
    if descending:
        lat, data = lat[::-1], data[..., ::-1, :]
    coords = {"time": times, "lat": lat, "lon": lon}
    if levels is not None:
        coords["level"] = np.asarray(levels, np.int32)
    dataset = xr.Dataset({variable: (dims, data)}, coords=coords)
    if scalar_level is not None:
        dataset = dataset.assign_coords(level=np.int32(scalar_level))
    directory = Path(root) / (base or f"weather_{degrees}deg") / folder
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{folder}{'hPa' if hpa else ''}_{year}_{degrees}deg.nc"
    encoding = {variable: {"zlib": True, "complevel": 1, "chunksizes": (1,) + data.shape[1:]}} if compress else {}
    dataset.to_netcdf(path, encoding=encoding)
    return path


def daily(times_from, days):
    """OpenSTL's daily frames of a stretch of hourly steps: every 24th, the last hour left out."""
    hours = pd.date_range(times_from, periods=days * 24, freq="h")
    return hours[0:len(hours) - 1:24]


# ---------------------------------------------------------------- registration and names

def test_every_set_and_resolution_is_registered_with_a_parsable_name():
    assert len(DATASETS) == 15 * 3 + 1
    for name, dataset in DATASETS.items():
        spec = get_dataset(name)
        assert spec.validation == "val" and "val" in spec.splits and spec.splits == ("train", "val", "test")
        assert spec.shape == (len(dataset.set.channels), dataset.grid.rows, dataset.grid.cols)
        assert spec.metric_options["channel_names"] == dataset.set.channels
        latitudes = spec.metric_options["latitudes"]
        step = float(dataset.grid.degrees)
        assert len(latitudes) == dataset.grid.rows and latitudes[0] == -90 + step / 2
        assert np.allclose(np.diff(latitudes), step) and spec.image_origin == "lower"
        for task in spec.canonical_tasks:
            assert resolve_task(task).dataset == name and parse_task(task).name == task
    assert parse_task("weather-uv10-12-12").dataset == "weather-uv10"
    assert resolve_task("weather-mv4_1_40625-12-12").shape == (12, 128, 256)
    assert resolve_task("weather-r_2_8125-12-12").shape == (1, 64, 128)
    assert get_dataset("weather").canonical_tasks == ("weather-12-12",)
    assert get_dataset("weather-mv4").canonical_tasks == ("weather-mv4-4-4", "weather-mv4-4-28")
    assert get_dataset("weather-mv4").metric_options["channel_names"] == tuple(
        f"{v}_{level}" for v in "rtuv" for level in (150, 500, 850))
    assert get_dataset("weather-mv5").metric_options["channel_names"][:3] == ("z_150", "z_500", "z_850")
    assert get_dataset("weather-uv10").metric_options["channel_names"] == ("u10", "v10")


def test_predbench69_declares_predbench_channels_and_constants():
    spec = get_dataset("weather-predbench69_1_40625")
    channels = spec.metric_options["channel_names"]
    # PredBench's variable_description order: t2m, u10, v10, tp, then z, t, r, u, v at 50..1000 hPa
    assert channels[:4] == ("t2m", "u10", "v10", "tp") and len(channels) == 69
    assert channels[4:17] == tuple(f"z_{level}" for level in LEVELS) and channels[-1] == "v_1000"
    assert channels.index("z_500") == 11 and channels.index("t_850") == 27  # PredBench's channel numbers
    assert spec.mean == PREDBENCH_MEAN and spec.std == PREDBENCH_STD and len(spec.mean) == len(spec.std) == 69
    assert spec.mean[11] == pytest.approx(54108.17928708192) and spec.std[27] == pytest.approx(15.60257554579701)
    assert spec.metric_options["metric_channels"] == ("t2m", "z_500", "t_850")
    assert spec.canonical_tasks == ("weather-predbench69_1_40625-2-1",) and spec.shape == (69, 128, 256)
    assert [s.key for s in SETS if "5.625" not in s.grids] == ["predbench69"]


# ---------------------------------------------------------------- several single-level variables (uv10)

def write_uv10(root, **kwargs):
    """Train: the last 10 days of 2014 and 20 of 2015 (30 daily frames, 6 clips of 12+12); val: 26 days of 2016
    (2 clips); test: 28 days of 2017 (4 clips); 2009 is in no split."""
    for folder, variable in (("10m_u_component_of_wind", "u10"), ("10m_v_component_of_wind", "v10")):
        for year, start, days in ((2009, "12-30", 2), (2014, "12-22", 10), (2015, "01-01", 20), (2016, "01-01", 26),
                                  (2017, "01-01", 28)):
            write(root, folder, variable, year, start, days * 24, **kwargs)


def test_uv10_channels_counts_normalisation_and_orientation(tmp_path):
    write_uv10(tmp_path)
    spec = get_dataset("weather-uv10")
    train, val, test = (spec.open(str(tmp_path), split, 12, 12) for split in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (6, 2, 4)
    frames = daily("2014-12-22", 30)
    expected = np.concatenate([native("u10", frames), native("v10", frames)], axis=1)  # [30, 2, 32, 64]
    assert np.allclose(train.mean, expected.mean(axis=(0, 2, 3)), atol=1e-4)
    assert np.allclose(train.std, expected.std(axis=(0, 2, 3)), atol=1e-4)
    assert val.mean == train.mean == test.mean and val.std == train.std  # every split: the training years'
    denormalised = statistics_of(spec, train)
    x, y = train[2]
    assert x.shape == (12, 2, 32, 64) and y.shape == (12, 2, 32, 64)
    assert np.allclose(denormalised.denormalize(x).numpy(), expected[2:14], atol=1e-3)
    assert np.allclose(denormalised.denormalize(y).numpy(), expected[14:26], atol=1e-3)
    # normalised per channel: each channel of the training frames has mean 0 and std 1 over the set
    normalised = (expected - np.array(train.mean)[None, :, None, None]) / np.array(train.std)[None, :, None, None]
    assert np.allclose(x.numpy(), normalised[2:14], atol=1e-4)
    x, _ = val[1]
    assert np.allclose(denormalised.denormalize(x).numpy()[:, 1], native("v10", daily("2016-01-01", 26))[1:13, 0],
                       atol=1e-3)
    # row 0 is the South (-87.1875): the made field grows with latitude
    assert (x.numpy()[:, :, 0] < x.numpy()[:, :, -1]).all()
    assert "u10" in train.description or "10m_u_component_of_wind" in train.description


def test_north_to_south_files_and_the_memory_budget_give_the_same_clips(tmp_path, monkeypatch):
    write_uv10(tmp_path / "a")
    write_uv10(tmp_path / "b", descending=True)
    spec = get_dataset("weather-uv10")
    a, b = spec.open(str(tmp_path / "a"), "test", 12, 12), spec.open(str(tmp_path / "b"), "test", 12, 12)
    assert a.keep and np.allclose(a[3][0].numpy(), b[3][0].numpy(), atol=1e-5)
    monkeypatch.setenv("STBENCH_WEATHER_MEMORY_MB", "0")
    direct = spec.open(str(tmp_path / "a"), "test", 12, 12)
    assert not direct.keep
    for index in (0, 3):
        assert np.array_equal(direct[index][1].numpy(), a[index][1].numpy())


def test_clips_read_only_their_own_frames(tmp_path, monkeypatch):
    """Opening reads time coordinates only (and the training statistics, once); an item reads its 24 frames."""
    write_uv10(tmp_path)
    spec = get_dataset("weather-uv10")
    spec.open(str(tmp_path), "train", 12, 12)  # statistics now computed and cached
    monkeypatch.setenv("STBENCH_WEATHER_MEMORY_MB", "0")
    reads = []
    original = reader.read_frames
    monkeypatch.setattr(reader, "read_frames", lambda field, path, info, local: reads.append(
        (field.variable, Path(path).name, len(local))) or original(field, path, info, local))
    test = spec.open(str(tmp_path), "test", 12, 12)
    assert reads == [] and len(test) == 4
    test[1]
    assert reads == [("u10", "10m_u_component_of_wind_2017_5.625deg.nc", 24),
                     ("v10", "10m_v_component_of_wind_2017_5.625deg.nc", 24)]


def test_training_statistics_are_cached_beside_the_data_and_follow_the_files(tmp_path):
    write_uv10(tmp_path)
    spec = get_dataset("weather-uv10")
    before = spec.open(str(tmp_path), "train", 12, 12).mean
    cache = tmp_path / "weather_5.625deg" / ".stbench-statistics" / "weather-uv10.json"
    stored = json.loads(cache.read_text())
    assert stored["channels"] == ["u10", "v10"] and stored["mean"] == pytest.approx(list(before))
    assert stored["frames"] == 30
    reader._statistics.clear()  # a new process: the file answers
    assert spec.open(str(tmp_path), "train", 12, 12).mean == pytest.approx(before)
    # a changed training file changes the fingerprint: the statistics are computed again
    path = tmp_path / "weather_5.625deg" / "10m_v_component_of_wind" / "10m_v_component_of_wind_2015_5.625deg.nc"
    with xr.open_dataset(path) as handle:
        changed = handle.load()
    (changed["v10"] + 10).to_dataset(name="v10").to_netcdf(tmp_path / "new.nc")
    (tmp_path / "new.nc").replace(path)
    after = spec.open(str(tmp_path), "train", 12, 12).mean
    assert after[0] == pytest.approx(before[0]) and after[1] > before[1] + 5


def test_a_missing_year_breaks_clips(tmp_path):
    for folder, variable in (("10m_u_component_of_wind", "u10"), ("10m_v_component_of_wind", "v10")):
        write(tmp_path, folder, variable, 2013, "12-22", 240)
        write(tmp_path, folder, variable, 2015, "01-01", 480)
    spec = get_dataset("weather-uv10")
    # 10 + 20 daily frames; clips of 4 never span the missing 2014: 7 in the first piece, 16 in the second
    # (OpenSTL leaves out the last window, starting at frame 26)
    assert len(spec.open(str(tmp_path), "train", 2, 2)) == 7 + 16
    assert "years absent: 2010, 2011, 2012, 2014" in spec.check(str(tmp_path))


def test_a_missing_variable_is_one_line_naming_its_zip_and_the_check(tmp_path):
    for year in (2015, 2017):
        write(tmp_path, "10m_u_component_of_wind", "u10", year, hours=72)
    with pytest.raises(UserError) as error:
        get_dataset("weather-uv10").open(str(tmp_path), "test", 1, 1)
    message = str(error.value)
    assert "\n" not in message and "10m_v_component_of_wind not found" in message
    assert "10m_v_component_of_wind_5.625deg.zip" in message and "WeatherBench" in message
    assert "stbench data check weather-uv10-12-12" in message
    assert main(["data", "check", "weather-uv10-12-12", "--data-root", str(tmp_path)]) == 2


# ---------------------------------------------------------------- pressure levels

def write_levels(root, folder, variable, years=((2015, "12-29", 72), (2016, "01-01", 72), (2017, "01-01", 72)),
                 levels=LEVELS, **kwargs):
    for year, start, hours in years:
        write(root, folder, variable, year, start, hours, levels=levels, **kwargs)


MV4 = (("relative_humidity", "r"), ("temperature", "t"), ("u_component_of_wind", "u"), ("v_component_of_wind", "v"))


def test_mv4_takes_three_levels_of_four_variables_every_6_hours(tmp_path):
    for folder, variable in MV4:
        # one file stores its levels from 1000 down to 50 hPa: levels are chosen by value, not position
        write_levels(tmp_path, folder, variable, levels=LEVELS[::-1] if variable == "t" else LEVELS)
    spec = get_dataset("weather-mv4")
    train, test = spec.open(str(tmp_path), "train", 4, 4), spec.open(str(tmp_path), "test", 4, 4)
    assert (len(train), len(test)) == (12 - 8, 12 - 8)  # 72 hours -> 12 six-hourly frames
    frames = pd.date_range("2015-12-29", periods=72, freq="h")[0:71:6]
    expected = np.concatenate([native(v, frames, levels=(150, 500, 850)) for _, v in MV4], axis=1)
    assert np.allclose(train.mean, expected.mean(axis=(0, 2, 3)), atol=1e-3)
    assert np.allclose(train.std, expected.std(axis=(0, 2, 3)), atol=1e-4)
    x, y = train[1]
    assert x.shape == (4, 12, 32, 64) and y.shape == (4, 12, 32, 64)
    native_x = statistics_of(spec, train).denormalize(x).numpy()
    assert np.allclose(native_x, expected[1:5], atol=2e-2)  # float32 at 5e4-scale geopotential-free values
    # channel 4 is t at 500 hPa: 250 + 50 offset in the made field
    assert abs(native_x[0, 4].mean() - (expected[1, 4].mean())) < 1e-2 and channels_differ(native_x)
    report = spec.check(str(tmp_path))
    assert "train 1979-2015: 12 6-hourly frames of 32x64, 4 clips of 4+4" in report
    assert "'r' at 150, 500, 850 hPa: 3 yearly files (2015-2017)" in report


def channels_differ(frames):
    means = frames.mean(axis=(0, 2, 3))
    return len(set(np.round(means, 1))) == len(means)


def test_r_is_1000_hpa_and_z_reads_the_500_hpa_subset_or_the_3d_files(tmp_path):
    write_levels(tmp_path / "a", "relative_humidity", "r")
    clips = get_dataset("weather-r").open(str(tmp_path / "a"), "test", 1, 1)
    assert len(clips) == 1  # 72 hours: 3 daily frames, one clip of 2
    x, _ = clips[0]
    r1000 = native("r", daily("2017-01-01", 3), levels=(1000,))
    assert np.allclose(x.numpy() * clips.std[0] + clips.mean[0], r1000[:1], atol=1e-3)
    # WeatherBench's single-level subset (geopotential_500/geopotential_500hPa_<year>_5.625deg.nc, level a scalar)
    for year, start in ((2015, "12-29"), (2017, "01-01")):
        write(tmp_path / "b", "geopotential_500", "z", year, start, 72, scalar_level=500, hpa=True)
    write_levels(tmp_path / "c", "geopotential", "z", years=((2015, "12-29", 72), (2017, "01-01", 72)))
    subset = get_dataset("weather-z").open(str(tmp_path / "b"), "test", 1, 1)
    full = get_dataset("weather-z").open(str(tmp_path / "c"), "test", 1, 1)
    expected = native("z", daily("2017-01-01", 3), levels=(500,))[:1]
    for clips in (subset, full):
        assert np.allclose(clips[0][0].numpy() * clips.std[0] + clips.mean[0], expected, atol=1e-2)


def test_wrong_levels_are_named(tmp_path):
    write(tmp_path / "a", "geopotential_500", "z", 2017, hours=72, scalar_level=850, hpa=True)
    with pytest.raises(UserError, match="at 850 hPa, not at 500 hPa"):
        get_dataset("weather-z").open(str(tmp_path / "a"), "test", 1, 1)
    write_levels(tmp_path / "b", "relative_humidity", "r", levels=(100, 500, 850))
    with pytest.raises(UserError, match=r"holds 'r' at \[100, 500, 850\] hPa, not at 1000 hPa"):
        get_dataset("weather-r").open(str(tmp_path / "b"), "test", 1, 1)
    write(tmp_path / "c", "temperature", "t", 2017, hours=72)  # a single-level file where 13 levels are needed
    with pytest.raises(UserError, match=r"'t' has no level axis .* use WeatherBench's temperature files"):
        get_dataset("weather-t").open(str(tmp_path / "c"), "test", 1, 1)


# ---------------------------------------------------------------- finer grids

def test_finer_grids_and_their_folder_names(tmp_path):
    for year, start, days in ((2015, "12-25", 7), (2017, "01-01", 5)):
        write(tmp_path / "a", "2m_temperature", "t2m", year, start, days * 24, degrees="2.8125")
        # OpenSTL's folder name for this grid: weather_2_8125deg
        write(tmp_path / "b", "2m_temperature", "t2m", year, start, days * 24, degrees="2.8125",
              base="weather_2_8125deg")
    spec = get_dataset("weather-t2m_2_8125")
    a, b = spec.open(str(tmp_path / "a"), "test", 2, 2), spec.open(str(tmp_path / "b"), "test", 2, 2)
    assert len(a) == len(b) == 1 and a[0][0].shape == (2, 1, 64, 128)
    assert np.allclose(a[0][0].numpy(), b[0][0].numpy())
    x = a[0][0].numpy() * a.std[0] + a.mean[0]
    assert np.allclose(x, native("t2m", daily("2017-01-01", 5), "2.8125")[:2], atol=1e-3)
    # 5.625 degree files do not serve the 2.8125 degree dataset
    write(tmp_path / "c", "2m_temperature", "t2m", 2017, degrees="5.625", base="weather")
    with pytest.raises(UserError, match=r"holds no 2m_temperature_<year>_2\.8125deg\.nc file"):
        spec.open(str(tmp_path / "c"), "test", 2, 2)
    (tmp_path / "d" / "weather_2.8125deg" / "2m_temperature").mkdir(parents=True)
    bad = tmp_path / "d" / "weather_2.8125deg" / "2m_temperature" / "2m_temperature_2017_2.8125deg.nc"
    (tmp_path / "c" / "weather" / "2m_temperature" / "2m_temperature_2017_5.625deg.nc").rename(bad)
    with pytest.raises(UserError, match=r"has shape \(24, 32, 64\) .*expected \(time, 64, 128\) on the 2\.8125"):
        spec.open(str(tmp_path / "d"), "test", 2, 2)


SINGLE_69 = (("2m_temperature", "t2m"), ("10m_u_component_of_wind", "u10"), ("10m_v_component_of_wind", "v10"),
             ("total_precipitation", "tp"))
PRESSURE_69 = (("geopotential", "z"), ("temperature", "t"), ("relative_humidity", "r"), ("u_component_of_wind", "u"),
               ("v_component_of_wind", "v"))


@pytest.fixture
def predbench_files(tmp_path):
    """25 hours of 2017 (test) for the 69 channels on the 1.40625 degree grid (about 230 MB, removed after)."""
    import shutil

    for folder, variable in SINGLE_69:
        write(tmp_path, folder, variable, 2017, hours=25, degrees="1.40625")
    for folder, variable in PRESSURE_69:
        write(tmp_path, folder, variable, 2017, hours=25, degrees="1.40625", levels=LEVELS)
    yield tmp_path
    shutil.rmtree(tmp_path / "weather_1.40625deg", ignore_errors=True)


def test_predbench69_windows_inside_a_year_with_fixed_constants(predbench_files):
    # 2+1 frames 6 h apart start every 3 h while start < 25 - 3 * 6: at 0, 3 and 6 h
    tmp_path = predbench_files
    spec = get_dataset("weather-predbench69_1_40625")
    test = spec.open(str(tmp_path), "test", 2, 1)
    assert len(test) == 3 and test.mean is None  # the spec's fixed constants apply
    x, y = test[1]
    assert x.shape == (2, 69, 128, 256) and y.shape == (1, 69, 128, 256)
    hours = pd.date_range("2017-01-01", periods=25, freq="h")[[3, 9, 15]]
    expected = np.concatenate([native(v, hours, "1.40625") for _, v in SINGLE_69] +
                              [native(v, hours, "1.40625", LEVELS) for _, v in PRESSURE_69], axis=1)
    mean, std = np.array(PREDBENCH_MEAN)[None, :, None, None], np.array(PREDBENCH_STD)[None, :, None, None]
    assert np.allclose(np.concatenate([x.numpy(), y.numpy()]), (expected - mean) / std, atol=1e-4)
    assert np.allclose(spec.denormalize(y).numpy(), expected[2:], rtol=1e-6, atol=1e-3)
    with pytest.raises(UserError, match="the train years 1979-2015 give 0 hourly frames"):
        spec.open(str(tmp_path), "train", 2, 1)
    report = spec.check(str(tmp_path))
    assert "test 2017-2018: 25 hourly steps of 128x256, 3 clips of 2+1 (frames 6 h apart, one starting every 3 h)" \
        in report and "PredBench's fixed per-channel mean and std (69 channels)" in report


def test_predbench_clip_starts_follow_its_year_windows():
    dataset = DATASETS["weather-predbench69_1_40625"]
    times = np.concatenate([pd.date_range(f"{year}-01-01", periods=8760, freq="h").values for year in (2013, 2014)])
    line = reader.Timeline(times.astype("datetime64[ns]"), pd.DatetimeIndex(times).year.to_numpy().astype(np.int32),
                           [], [], [], [], [], [])
    starts, gap = reader.clip_starts(dataset, line, "train", 3)
    per_year = len(range(0, 8760 - 3 * 6, 6))  # WeatherBenchDatasetNp: range(0, n - clip_len * interval, stride)
    assert gap == 6 and len(starts) == 2 * per_year and starts[per_year] == 8760
    assert len(reader.clip_starts(dataset, line, "test", 21)[0]) == 2 * len(range(0, 8760 - 21 * 6, 3))


# ---------------------------------------------------------------- prepare

def zip_folder(folder, archive):
    with zipfile.ZipFile(archive, "w") as handle:  # WeatherBench's zips hold the yearly files at their top
        for path in sorted(Path(folder).iterdir()):
            handle.write(path, path.name)
    return archive


def test_prepare_several_variables_from_their_zips(tmp_path, capsys):
    write_uv10(tmp_path / "made")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    for folder in ("10m_u_component_of_wind", "10m_v_component_of_wind"):
        zip_folder(tmp_path / "made" / "weather_5.625deg" / folder, downloads / f"{folder}_5.625deg.zip")
    root = tmp_path / "data"
    arguments = ["data", "prepare", "weather-uv10-12-12", "--data-root", str(root), "--from"]
    assert main(arguments + [str(downloads / "10m_u_component_of_wind_5.625deg.zip")]) == 0
    out = capsys.readouterr().out
    assert "5 yearly files (2009-2017) written to" in out
    assert "still needed: 10m_v_component_of_wind_5.625deg.zip" in out
    assert main(arguments + [str(downloads)]) == 0  # a folder of zips: the missing variable is added
    out = capsys.readouterr().out
    assert "10m_u_component_of_wind already in place" in out and "still needed" not in out
    assert main(arguments + [str(downloads)]) == 2  # nothing left to add
    assert "already holds the data" in capsys.readouterr().err
    assert len(get_dataset("weather-uv10").open(str(root), "test", 12, 12)) == 4


def test_prepare_the_500_hpa_subset(tmp_path, capsys):
    for year in (2015, 2016, 2017):
        write(tmp_path / "made", "geopotential_500", "z", year, hours=72, scalar_level=500, hpa=True)
    archive = zip_folder(tmp_path / "made" / "weather_5.625deg" / "geopotential_500",
                         tmp_path / "geopotential_500_5.625deg.zip")
    assert main(["data", "prepare", "weather-z-12-12", "--from", str(archive), "--data-root", str(tmp_path / "d")]) == 0
    assert sorted(p.name for p in (tmp_path / "d" / "weather_5.625deg" / "geopotential_500").iterdir()) == [
        f"geopotential_500hPa_{year}_5.625deg.nc" for year in (2015, 2016, 2017)]
    assert main(["data", "check", "weather-z-1-1", "--data-root", str(tmp_path / "d")]) == 0
    assert "test: 1 clips for weather-z-1-1" in capsys.readouterr().out


# ---------------------------------------------------------------- scores per channel

def test_the_default_scores_report_each_channel(tmp_path):
    """The spec's metric options reach the weather metrics: wrmse / wmae per channel, named by the channels."""
    import torch
    from stbench.evaluation import build_metrics

    write_uv10(tmp_path)
    spec = get_dataset("weather-uv10")
    test = spec.open(str(tmp_path), "test", 12, 12)
    denormalised = statistics_of(spec, test)
    metrics = build_metrics(spec.default_metrics, denormalised, resolve_task("weather-uv10-12-12"))
    assert [m.name for m, _ in metrics] == ["mse", "mae", "rmse", "wrmse", "wmae"]
    x, y = (torch.stack(part) for part in zip(*(test[i] for i in range(len(test)))))
    pred, true = denormalised.denormalize(x[:, -1:].repeat(1, 12, 1, 1, 1)), denormalised.denormalize(y)
    values = {}
    for _, metric in metrics:
        metric.update(pred, true)
        values.update(metric.compute())
    assert {"wrmse_u10", "wrmse_v10", "wmae_u10", "wmae_v10"} <= set(values)
    assert values["wrmse"] == pytest.approx((values["wrmse_u10"] + values["wrmse_v10"]) / 2)
    weights = np.cos(np.deg2rad(spec.metric_options["latitudes"]))
    weights = (weights / weights.mean())[:, None]
    error = (pred - true).double().numpy()[:, :, 1]  # v10, native m/s
    assert values["wrmse_v10"] == pytest.approx(np.sqrt((weights * error ** 2).mean(axis=(-1, -2))).mean())
