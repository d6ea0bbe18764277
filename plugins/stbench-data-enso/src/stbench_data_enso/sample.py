"""A small ICAR-ENSO CMIP_train.nc, for tests: core's dataset contract test and this plugin's."""
from pathlib import Path

import numpy as np
import xarray as xr

from stbench import SampleData

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


def make_sample(root) -> SampleData:
    """One year per run (36 months): 11 clips of enso-12-14 in each run, 30 training runs, one each for val and
    test."""
    write_fixture(root)
    return SampleData(task="enso-12-14", clips={"train": 330, "val": 11, "test": 11},
                      check_lines=("test: 1 run(s), 36 months, 11 clips of 12+14, 24x48",))
