"""stbench dataset plugin: WeatherBench (Rasp et al., 2020) as OpenSTL and PredBench read it.

One dataset name per variable set and resolution, all read from WeatherBench's yearly netCDF files:

- OpenSTL's variables (``openstl/datasets/dataloader_weather.py``): ``weather`` (2 m temperature at
  5.625 deg, kept from before), ``weather-<set>`` at 5.625 deg and ``weather-<set>_2_8125`` /
  ``weather-<set>_1_40625`` at the finer grids (OpenSTL's own resolution spelling), for the sets t2m, u10, v10,
  uv10, tcc, tp, z, t850, r, g, t, u, v, mv4 and mv5. Daily frames (6-hourly for mv4 / mv5), z-scored per
  channel with the training years' statistics.
- PredBench's 69 channels (``configs/_base_/datasets/weatherbench128x256_69.py``): ``weather-predbench69_1_40625``,
  6-hourly frames in windows inside one year, normalised with PredBench's fixed constants.

Task names must parse as ``<dataset>-<T_in>-<T_out>`` with dataset words that start with a letter, so a
resolution is written ``_1_40625`` (as OpenSTL's ``weather_t2m_1_40625``), not ``-1.40625``.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

from stbench import DatasetSpec, hookimpl, lazy, lazy_exports

SOURCE = "WeatherBench (github.com/pangeo-data/WeatherBench; files at dataserv.ub.tum.de/s/m1524895)"
LEVELS = (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)  # hPa, as WeatherBench ships them
MV_LEVELS = (150, 500, 850)  # OpenSTL dataset_constant.py, weather_mv_*: level [150, 500, 850]


@dataclass(frozen=True)
class Grid:
    """One WeatherBench resolution: its spelling in file names, the task-name suffix and the frame size."""

    degrees: str  # as in WeatherBench's file names: 5.625, 2.8125, 1.40625
    suffix: str  # appended to the variable set in dataset names ("" for 5.625 deg)
    rows: int
    cols: int

    @property
    def latitudes(self) -> Tuple[float, ...]:
        """WeatherBench's regridded latitudes, cell centres ascending: -90 + d/2 + i*d (regrid.py)."""
        step = float(self.degrees)
        return tuple(-90.0 + step / 2 + i * step for i in range(self.rows))

    @property
    def folders(self) -> Tuple[str, ...]:
        """Where the variable folders may lie under the data root, first found: stbench's name, OpenSTL's
        (dataloader_weather.py: weather_<5_625>deg, falling back to weather) and WeatherBench's own (<res>deg)."""
        return (f"weather_{self.degrees}deg", f"weather_{self.degrees.replace('.', '_')}deg", "weather",
                f"{self.degrees}deg")


GRIDS = {
    "5.625": Grid("5.625", "", 32, 64),
    "2.8125": Grid("2.8125", "_2_8125", 64, 128),
    "1.40625": Grid("1.40625", "_1_40625", 128, 256),
}


@dataclass(frozen=True)
class Field:
    """One WeatherBench variable as a group of channels.

    ``folders``: the WeatherBench folders that may hold it, first found (the 500 hPa geopotential ships as its
    own single-level folder ``geopotential_500`` at 5.625 deg only; elsewhere it is read from ``geopotential``).
    ``variable``: its name inside the files. ``levels``: the pressure levels taken (hPa, in this channel order),
    or () for a single-level variable. ``names``: the channel names.
    """

    folders: Tuple[str, ...]
    variable: str
    levels: Tuple[int, ...] = ()
    label: str = ""
    unit: str = ""

    @property
    def names(self) -> Tuple[str, ...]:
        if not self.levels:
            return (self.variable,)
        return tuple(f"{self.variable}_{level}" for level in self.levels)


def single(folder, variable, label, unit):
    return Field((folder,), variable, (), label, unit)


def pressure(folder, variable, levels, label, unit, subset=None):
    folders = ((subset,) if subset else ()) + (folder,)
    return Field(folders, variable, tuple(levels), label, unit)


T2M = single("2m_temperature", "t2m", "2 m temperature", "K")
U10 = single("10m_u_component_of_wind", "u10", "10 m u wind", "m/s")
V10 = single("10m_v_component_of_wind", "v10", "10 m v wind", "m/s")
TCC = single("total_cloud_cover", "tcc", "total cloud cover", "0-1")
TP = single("total_precipitation", "tp", "hourly precipitation", "m")


def geopotential(levels):
    return pressure("geopotential", "z", levels, "geopotential", "m2/s2",
                    subset="geopotential_500" if tuple(levels) == (500,) else None)


def temperature(levels):
    return pressure("temperature", "t", levels, "temperature", "K",
                    subset="temperature_850" if tuple(levels) == (850,) else None)


def humidity(levels):
    return pressure("relative_humidity", "r", levels, "relative humidity", "%")


def u_wind(levels):
    return pressure("u_component_of_wind", "u", levels, "u wind", "m/s")


def v_wind(levels):
    return pressure("v_component_of_wind", "v", levels, "v wind", "m/s")


@dataclass(frozen=True)
class Protocol:
    """How frames and clips are cut from the hourly files, and how they are normalised.

    ``openstl``: the split's years concatenated, every ``hours``-th hourly step kept
    (``isel(time=slice(None, -1, step))``), a clip at every kept frame, the last possible window left out
    (OpenSTL's ``valid_idx``); z-score with the training years' per-channel mean and std.
    ``predbench``: inside each year separately, a window of frames ``hours`` apart starts every ``starts[split]``
    hours (``range(0, hours_in_year - length * hours, stride)``, WeatherBenchDatasetNp); fixed mean and std.
    """

    kind: str
    hours: int
    periods: Tuple[Tuple[str, int, int], ...]  # (split, first year, last year)
    starts: Tuple[Tuple[str, int], ...] = ()  # predbench: (split, hours between clip starts)
    source: str = ""

    def period(self, split) -> Tuple[int, int]:
        return dict((s, (a, b)) for s, a, b in self.periods)[split]

    def start_hours(self, split) -> int:
        return dict(self.starts)[split]

    @property
    def splits(self) -> Tuple[str, ...]:
        return tuple(s for s, _, _ in self.periods)

    @property
    def frame_words(self) -> str:
        return "daily" if self.hours == 24 else f"{self.hours}-hourly"


# OpenSTL dataset_constant.py: weather_{t2m,r,uv10,tcc}_*: train 2010-2015, val 2016, test 2017-2018; daily
# frames reproduce the clip counts USTEP Table I gives for weather-12-12 (2,167 train, 706 test)
OPENSTL = Protocol("openstl", 24, (("train", 2010, 2015), ("val", 2016, 2016), ("test", 2017, 2018)),
                   source="OpenSTL dataset_constant.py weather_*_5_625 / _1_40625")
# OpenSTL dataset_constant.py: weather_mv_4_4_s6_5_625 / weather_mv_4_28_s6_5_625: step 6, train 1979-2015
OPENSTL_MV = Protocol("openstl", 6, (("train", 1979, 2015), ("val", 2016, 2016), ("test", 2017, 2018)),
                      source="OpenSTL dataset_constant.py weather_mv_4_4_s6_5_625, weather_mv_4_28_s6_5_625")
# PredBench weatherbench128x256_69.py: year_split 1979-2015 / 2016 / 2017-2018, frame_interval 6,
# hour_stride 6 (train) and 3 (val, test)
PREDBENCH = Protocol("predbench", 6, (("train", 1979, 2015), ("val", 2016, 2016), ("test", 2017, 2018)),
                     (("train", 6), ("val", 3), ("test", 3)),
                     source="PredBench configs/_base_/datasets/weatherbench128x256_69.py")


@dataclass(frozen=True)
class WeatherSet:
    """A variable set: its fields in channel order, how clips are cut and where it comes from."""

    key: str  # the set's name in dataset names
    fields: Tuple[Field, ...]
    protocol: Protocol
    tasks: Tuple[str, ...]  # canonical "<T_in>-<T_out>"
    about: str
    openstl: str = ""  # OpenSTL's data_name (dataloader_weather.py), when it has one
    mean: Optional[Tuple[float, ...]] = None  # fixed normalisation (PredBench); None: the training years'
    std: Optional[Tuple[float, ...]] = None
    metric_channels: Tuple[str, ...] = ()  # the channels latitude-weighted scores report (default: all)
    grids: Tuple[str, ...] = tuple(GRIDS)

    @property
    def channels(self) -> Tuple[str, ...]:
        return tuple(name for field in self.fields for name in field.names)


def openstl_set(key, fields, about, openstl=None, protocol=OPENSTL, tasks=("12-12",)):
    return WeatherSet(key, tuple(fields), protocol, tuple(tasks), about, openstl or key)


# PredBench's channel order and constants (configs/_base_/datasets/weatherbench128x256_69.py,
# variable_description: mean / std per channel, computed by PredBench on its training data)
PREDBENCH_FIELDS = (T2M, U10, V10, TP, geopotential(LEVELS), temperature(LEVELS), humidity(LEVELS), u_wind(LEVELS),
                    v_wind(LEVELS))
PREDBENCH_MEAN = (
    278.4564870856443, -0.0530283683368791, 0.18636863377777407, 9.984565030612924e-05,
    199352.57820299748, 157621.15846563203, 133121.747558806, 115312.9521689395, 101208.96428009825,
    89402.02720077451, 69971.11520708908, 54108.17928708192, 40643.06247051602, 28925.294253674496,
    13748.344600698667, 7014.361392289925, 738.2807581190701,
    212.49501509269894, 208.3946397793598, 213.2947049909197, 218.0289570929518, 222.73254935574673,
    228.83115062174505, 242.09947692004096, 252.91528895041756, 261.0999571422843, 267.35783957031265,
    274.5183571311846, 277.31681641173003, 280.97190507170177,
    6.511358968728509, 26.264878314150117, 26.7949989632441, 35.665004420665426, 47.299001650330354,
    53.845128422836055, 52.585173542914724, 50.38509777109044, 51.56973879147407, 54.95396485898575,
    69.12254820722166, 79.09543472831598, 78.60669913883737,
    5.634260007777595, 10.268632338805652, 13.534361833392937, 14.209449837202342, 13.348236932058189,
    11.80463621623413, 8.817827706395354, 6.561363374459267, 4.812414306248437, 3.3435517722262738,
    1.413628674629966, 0.6133454894506712, -0.03533602561696744,
    0.004142794736935441, 0.014410842271195152, -0.03666761547508155, -0.04472469947340962, -0.029776500860700526,
    -0.02294325706302894, -0.01773763967263352, -0.024035272796776603, -0.027187391977621357, 0.020306812725551307,
    0.142814150161757, 0.20342171875493803, 0.18407060384821664,
)
PREDBENCH_STD = (
    21.265027650260755, 5.540960562031698, 4.761945612664701, 0.0003746203863219765,
    5879.004870527404, 5505.050026218838, 5836.781124207325, 5824.0431667247085, 5531.3351715192575,
    5086.688230980537, 4150.618931776315, 3354.7553269562677, 2695.5869661518964, 2135.319483622276,
    1468.4257655700098, 1227.114274255912, 1070.506228373003,
    10.275156572873254, 12.518752873104798, 8.939279791503143, 7.190521251818904, 8.528138592904716,
    10.71310670353003, 12.701194067815829, 13.071147057611798, 13.416323808762652, 14.779978233491846,
    15.60257554579701, 16.11263285629241, 17.155902960638247,
    15.529836191063442, 33.448527944235714, 32.22046881917166, 34.1015038567506, 34.41553746432257,
    33.870575925938965, 34.092882653729944, 33.47841131762907, 32.64479278270746, 31.381964516288175,
    26.295896374623183, 21.468516598458567, 18.21901415271577,
    15.318779011446775, 13.517099389326702, 16.0300443606774, 17.66140414898396, 17.955196960082958,
    17.109722606861304, 14.334814041621819, 11.976260520664134, 10.32541839127276, 9.158075108319668,
    8.179482993466186, 7.930190481030738, 6.134853230873978,
    7.040770427987679, 7.472195170243973, 9.56579864486826, 11.872408859449058, 13.374472277067502,
    13.33729358279563, 11.227189986236919, 9.178088213021436, 7.799095387337467, 6.866160594882073,
    6.2587639682841685, 6.46473584751148, 5.304272758031071,
)

SETS = (
    openstl_set("t2m", [T2M], "2 m temperature"),
    openstl_set("u10", [U10], "10 m u wind"),
    openstl_set("v10", [V10], "10 m v wind"),
    openstl_set("uv10", [U10, V10], "10 m u and v wind (2 channels)"),
    openstl_set("tcc", [TCC], "total cloud cover"),
    openstl_set("tp", [TP], "hourly total precipitation"),
    openstl_set("z", [geopotential((500,))], "500 hPa geopotential"),
    openstl_set("t850", [temperature((850,))], "850 hPa temperature"),
    # OpenSTL keeps the last level of the relative-humidity files (data[:, -1:]): 1000 hPa, as levels ascend
    openstl_set("r", [humidity((1000,))], "1000 hPa relative humidity"),
    # OpenSTL's other pressure-level variables, read alone, keep every level of the file
    openstl_set("g", [geopotential(LEVELS)], "geopotential at 13 levels"),
    openstl_set("t", [temperature(LEVELS)], "temperature at 13 levels"),
    openstl_set("u", [u_wind(LEVELS)], "u wind at 13 levels"),
    openstl_set("v", [v_wind(LEVELS)], "v wind at 13 levels"),
    openstl_set("mv4", [humidity(MV_LEVELS), temperature(MV_LEVELS), u_wind(MV_LEVELS), v_wind(MV_LEVELS)],
                "r, t, u, v at 150, 500, 850 hPa (12 channels)", openstl="mv / mv4", protocol=OPENSTL_MV,
                tasks=("4-4", "4-28")),
    openstl_set("mv5", [geopotential(MV_LEVELS), humidity(MV_LEVELS), temperature(MV_LEVELS), u_wind(MV_LEVELS),
                        v_wind(MV_LEVELS)],
                "z, r, t, u, v at 150, 500, 850 hPa (15 channels)", protocol=OPENSTL_MV, tasks=("4-4", "4-28")),
    WeatherSet("predbench69", PREDBENCH_FIELDS, PREDBENCH, ("2-1",),
               "t2m, u10, v10, tp and z, t, r, u, v at 13 levels (69 channels)", "", PREDBENCH_MEAN, PREDBENCH_STD,
               metric_channels=("t2m", "z_500", "t_850"), grids=("1.40625",)),
)


def dataset_name(weather_set: WeatherSet, grid: Grid) -> str:
    if weather_set.key == "t2m" and grid.degrees == "5.625":
        return "weather"  # the name weather-12-12 records and boards carry
    return f"weather-{weather_set.key}{grid.suffix}"


@dataclass(frozen=True)
class Dataset:
    """A registered dataset: a variable set on a grid."""

    name: str
    set: WeatherSet
    grid: Grid

    @property
    def task(self) -> str:
        """The canonical task that messages name."""
        return f"{self.name}-{self.set.tasks[0]}"

    @property
    def shape(self) -> Tuple[int, int, int]:
        return (len(self.set.channels), self.grid.rows, self.grid.cols)

    def folder(self, field: Field) -> str:
        """The folder WeatherBench ships ``field`` in at this resolution (the single-level subsets
        geopotential_500 and temperature_850 exist at 5.625 deg only)."""
        return field.folders[0] if self.grid.degrees == "5.625" else field.folders[-1]

    @property
    def folders(self) -> Tuple[str, ...]:
        """The WeatherBench folders (so the zips) this dataset needs, one per field, in channel order."""
        return tuple(dict.fromkeys(self.folder(field) for field in self.set.fields))


DATASETS = {dataset_name(s, GRIDS[g]): Dataset(dataset_name(s, GRIDS[g]), s, GRIDS[g]) for s in SETS for g in s.grids}


class Bound:
    """``reader.<function>(name, ...)`` as a picklable callable: the reader (numpy, torch, xarray) loads on call."""

    def __init__(self, function: str, name: str):
        self.function, self.name = function, name

    def __call__(self, *args):
        return lazy(f"stbench_data_weather.reader:{self.function}")(self.name, *args)

    def __repr__(self):
        return f"{self.function}({self.name!r})"

    def __eq__(self, other):
        return isinstance(other, Bound) and (other.function, other.name) == (self.function, self.name)

    def __hash__(self):
        return hash((self.function, self.name))


def layout(dataset: Dataset) -> str:
    grid, weather_set, protocol = dataset.grid, dataset.set, dataset.set.protocol
    base = grid.folders[0]
    lines = [f"WeatherBench {weather_set.about}, {grid.degrees} degree grid ({grid.rows}x{grid.cols}); "
             f"source: {SOURCE}.",
             f"Variable folders under {base}/ (or OpenSTL's {grid.folders[1]}/ or {grid.folders[2]}/, or "
             f"WeatherBench's {grid.folders[3]}/) in the data root, as the zips unpack:"]
    for field in weather_set.fields:
        where = " or ".join(f"{folder}/{folder}{'hPa' if folder != field.folders[-1] else ''}_<year>_"
                            f"{grid.degrees}deg.nc" for folder in field.folders)
        what = (f"'{field.variable}' (time, lat, lon)" if not field.levels else
                f"'{field.variable}' (time, level, lat, lon) at {', '.join(map(str, field.levels))} hPa")
        if len(field.folders) > 1:
            what = (f"'{field.variable}' at {field.levels[0]} hPa, (time, lat, lon) in the subset, else "
                    "(time, level, lat, lon)")
        lines.append(f"  {base}/{where}: {what}, {field.unit}")
    lines.append(f"  one file per year, hourly, latitudes ascending (row 0 = South, drawn at the bottom); zips: "
                 + ", ".join(f"{folder}_{grid.degrees}deg.zip" for folder in dataset.folders))
    first, last = protocol.period("train")
    if protocol.kind == "openstl":
        frames = (f"As OpenSTL ({protocol.source}): train {first}-{last}, val 2016, test 2017-2018; the split's "
                  f"hourly steps concatenated, every {protocol.hours}th kept ({protocol.frame_words} frames), a "
                  "clip at every frame, the last window left out; z-scored per channel with the training years' "
                  "mean and std (metrics see native units).")
    else:
        frames = (f"As PredBench ({protocol.source}): train {first}-{last}, val 2016, test 2017-2018; inside each "
                  f"year, frames {protocol.hours} h apart, a clip starting every "
                  f"{protocol.start_hours('train')} h (train) or {protocol.start_hours('test')} h (val, test); "
                  "normalised with PredBench's fixed per-channel means and stds.")
    lines.append(frames)
    lines.append(f"'stbench data prepare {dataset.task} --from <a zip, or a folder of zips or .nc files>' lays "
                 f"them out; 'stbench data check {dataset.task}' checks them.")
    return "\n".join(lines)


def spec(dataset: Dataset) -> DatasetSpec:
    weather_set, grid, protocol = dataset.set, dataset.grid, dataset.set.protocol
    channels = weather_set.channels
    options = {"spatial_norm": True, "latitudes": grid.latitudes, "channel_names": channels}
    if weather_set.metric_channels:
        options["metric_channels"] = weather_set.metric_channels
    where = f"OpenSTL {weather_set.openstl}" if weather_set.openstl else "PredBench weatherbench128x256_69"
    fixed = {"mean": weather_set.mean, "std": weather_set.std} if weather_set.mean else {}
    return DatasetSpec(
        name=dataset.name,
        shape=dataset.shape,
        open=Bound("open_weather", dataset.name),
        # the longest clip the shortest split (one year) holds
        max_length=365 * 24 // protocol.hours - (protocol.kind == "predbench"),
        layout=layout(dataset),
        canonical_tasks=tuple(f"{dataset.name}-{task}" for task in weather_set.tasks),
        value_range=None,
        # mse / mae / rmse as OpenSTL reports them (per-pixel means); the original t2m set keeps exactly these
        default_metrics=("mse", "mae", "rmse") if dataset.name == "weather" else ("mse", "mae", "rmse", "wrmse",
                                                                                   "wmae"),
        metric_options=options,
        train_defaults={"paper": {"epochs": 50, "batch_size": 16}},
        hparams_like=None if dataset.name == "weather" else "weather",
        check=Bound("check_weather", dataset.name),
        prepare=Bound("prepare_weather", dataset.name),
        splits=protocol.splits,
        image_origin="lower",  # latitudes ascend: row 0 is the southernmost
        description=(f"WeatherBench {weather_set.about}, {grid.degrees} deg ({grid.rows}x{grid.cols}), "
                     f"{protocol.frame_words} frames ({where})"),
        validation="val",  # WeatherBench 2016, in both references
        sample_data=lazy("stbench_data_weather.sample:make_sample") if dataset.name == "weather" else None,
        **fixed,
    )


SPECS = [spec(dataset) for dataset in DATASETS.values()]
SPEC = SPECS[0]  # weather: 2 m temperature at 5.625 deg


@hookimpl
def stbench_register_datasets(register):
    for dataset_spec in SPECS:
        register(dataset_spec)


# the readers (numpy, torch, xarray) load when data is opened, so registering (and `stbench list`) imports
# none of them; their names stay reachable from the package
__getattr__ = lazy_exports(__name__, {
    "reader": ("WeatherClips", "Timeline", "open_weather", "check_weather", "prepare_weather", "timeline",
               "train_statistics", "field_files", "read_frames"),
})
