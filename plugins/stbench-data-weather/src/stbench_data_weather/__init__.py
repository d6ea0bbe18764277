"""stbench dataset plugin: WeatherBench 2 m temperature at 5.625 degrees (OpenSTL's weather-12-12)."""
import re

from stbench import DatasetSpec, hookimpl, lazy
from stbench.specs import lazy_exports

# WeatherBench's own name, then OpenSTL's (dataloader_weather.py: weather_5_625deg, falling back to weather)
FOLDERS = ("weather_5.625deg", "weather_5_625deg", "weather")
VARIABLE_FOLDER, VARIABLE = "2m_temperature", "t2m"
GRID = (32, 64)
PERIODS = {"train": ("2010", "2015"), "val": ("2016", "2016"), "test": ("2017", "2018")}
STEP = 24  # hours between frames: clips are daily sequences
# np.linspace(-87.1875, 87.1875, GRID[0]) computed as numpy does (i * step + start, the last point exact), so
# declaring the dataset needs no numpy
LATITUDES = tuple(i * ((87.1875 - -87.1875) / (GRID[0] - 1)) + -87.1875 for i in range(GRID[0] - 1)) + (87.1875,)

SOURCE = "github.com/pangeo-data/WeatherBench (all_5.625deg/2m_temperature_5.625deg.zip)"
LAYOUT = f"""WeatherBench 2 m temperature, 5.625 degree grid ({FOLDERS[0]}/ under the data root, or OpenSTL's
{FOLDERS[1]}/ or {FOLDERS[2]}/; source: {SOURCE}):
  {FOLDERS[0]}/{VARIABLE_FOLDER}/{VARIABLE_FOLDER}_<year>_5.625deg.nc   one netCDF file per year, 1979-2018,
      variable '{VARIABLE}' (time, lat 32, lon 64) in Kelvin, hourly; latitudes ascending (row 0 = South)
'stbench data prepare weather-12-12 --from 2m_temperature_5.625deg.zip' (or a folder of the .nc files) lays it out.
Used years: train 2010-2015, val 2016, test 2017-2018. As OpenSTL: every {STEP}th hourly step (daily frames),
clips start at every frame (2,167 train and 706 test clips for 12+12 frames), z-scored with the mean and std
of the training years (metrics see Kelvin)."""


HINT = ("get 2m_temperature_5.625deg.zip from " + SOURCE + ", lay it out with 'stbench data prepare weather-12-12 "
        "--from <the zip>', then run 'stbench data check weather-12-12' (it prints the expected layout)")


YEAR_FILE = re.compile(rf"^{VARIABLE_FOLDER}_(\d{{4}})_5\.625deg\.nc$")


SPEC = DatasetSpec(
    name="weather",
    shape=(1,) + GRID,
    open=lazy("stbench_data_weather.reader:open_weather"),
    max_length=365,
    layout=LAYOUT,
    canonical_tasks=("weather-12-12",),
    value_range=None,
    default_metrics=("mse", "mae", "rmse"),
    metric_options={"spatial_norm": True, "latitudes": LATITUDES},
    train_defaults={"paper": {"epochs": 50, "batch_size": 16}},
    check=lazy("stbench_data_weather.reader:check_weather"),
    prepare=lazy("stbench_data_weather.reader:prepare_weather"),
    splits=tuple(PERIODS),
    validation="val",  # 2016, the anchors' validation year
    image_origin="lower",  # latitudes ascend: row 0 is the southernmost
    description="WeatherBench 2 m temperature, 5.625 deg (32x64), daily frames",
)


@hookimpl
def stbench_register_datasets(register):
    register(SPEC)


# the readers (numpy, torch) load when the data is opened, so registering (and `stbench list`) imports
# neither; their names stay reachable from the package
__getattr__ = lazy_exports(__name__, {
    "reader": ("_cache", "_xarray", "variable_files", "_open", "load_period", "train_statistics", "WeatherClips",
               "open_weather", "check_weather", "prepare_weather"),
})
