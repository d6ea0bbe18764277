"""A tiny WeatherBench 2m temperature (yearly NetCDF files at 5.625 deg), for tests: core's dataset contract test
and this plugin's."""
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from stbench import SampleData

LAT = np.linspace(-87.1875, 87.1875, 32)
LON = np.arange(64) * 5.625


def write_year(folder, year, start, hours, lat=LAT, variable="t2m"):
    times = pd.date_range(f"{year}-{start}", periods=hours, freq="h")
    hour = (times - pd.Timestamp("2000-01-01")).total_seconds().to_numpy()[:, None, None] / 3600
    values = (280 + 20 * np.cos(np.deg2rad(lat))[None, :, None] + np.sin(hour / 24 * 2 * np.pi)
              + 0.01 * hour + 0 * LON[None, None, :]).astype(np.float32)
    data = xr.Dataset({variable: (("time", "lat", "lon"), values)}, coords={"time": times, "lat": lat, "lon": LON})
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"2m_temperature_{year}_5.625deg.nc"
    data.to_netcdf(path)
    return path, times, values


def write_fixture(root, **kwargs):
    """Train: the last 10 days of 2014 and the first 20 of 2015 (30 days -> 30 daily frames -> 6 clips of 24);
    val: 26 days of 2016 (2 clips); test: 28 days of 2017 (28 frames -> 4 clips); 2009 lies outside every split."""
    folder = Path(root) / "weather_5.625deg" / "2m_temperature"
    parts = {year: write_year(folder, year, start, days * 24, **kwargs)
             for year, start, days in ((2009, "12-30", 2), (2014, "12-22", 10), (2015, "01-01", 20),
                                       (2016, "01-01", 26), (2017, "01-01", 28))}
    return folder, parts


def make_sample(root) -> SampleData:
    """weather-12-12: 6 training clips, 2 validation, 4 test (see :func:`write_fixture`)."""
    write_fixture(root)
    return SampleData(task="weather-12-12", clips={"train": 6, "val": 2, "test": 4},
                      check_lines=("test 2017-2018: 28 daily frames of 32x64, 4 clips of 12+12",))
