"""stbench dataset plugin: ICAR-ENSO CMIP sea-surface temperature anomalies (PredBench's 12 -> 14 months)."""
import os
from pathlib import Path

import numpy as np
import torch
from stbench import Clips, DatasetSpec, UserError, hookimpl

FOLDER, FILE, VARIABLE = "enso", "CMIP_train.nc", "sst"
DIMS = ("year", "month", "lat", "lon")
GRID = (24, 48)  # 5-degree grid: lat -55..60, lon 95E..330E (PredBench's / Earthformer's Pacific crop)
LON_RANGE = (95, 330)
LATITUDES = tuple(float(v) for v in np.arange(-55, 61, 5))
LONGITUDES = tuple(float(v) for v in np.arange(95, 331, 5))
# CMIP_train.nc stacks 15 CMIP6 runs of 151 rows, then 17 CMIP5 runs of 140 rows; a row holds 36 months
# starting at January of its year. Subsets (e.g. tests) may say other row counts in these global attributes.
CMIP6_MODELS, CMIP6_YEARS, CMIP5_MODELS, CMIP5_YEARS = 15, 151, 17, 140
YEARS_ATTRS = ("stbench_cmip6_years", "stbench_cmip5_years")
# PredBench's normalisation: (sst - SST_MIN) / (SST_MAX - SST_MIN), the extremes of both CMIP ensembles
SST_MIN, SST_MAX = -16.549121856689453, 10.198975563049316
NINO34_BOX = {"lat": (10, 13), "lon": (19, 30)}  # 5S-5N, 170W-120W on the grid above
NINO_WINDOW = 3  # months of the running mean of the Nino3.4 index

LAYOUT = f"""ICAR-ENSO ({FOLDER}/ under the data root; source: the Tianchi AI Earth ENSO challenge data,
tianchi.aliyun.com/dataset/98942, enso_round1_train_20210201, as PredBench and Earthformer use it):
  {FOLDER}/{FILE}   variable '{VARIABLE}' (year 4645, month 36, lat 24, lon 72): monthly SST anomalies of
      15 CMIP6 runs x 151 rows then 17 CMIP5 runs x 140 rows; each row holds 36 months from its year
      ({FOLDER}/enso_round1_train_20210201/{FILE} is found too; CMIP_label.nc is not needed)
As PredBench: longitudes 95E..330E (48 of 72), each run's rows folded into one monthly series
(1,836 months per CMIP6 run, 1,704 per CMIP5 run); train = all CMIP6 runs + the first 15 CMIP5 runs,
val = CMIP5 run 16, test = CMIP5 run 17; clips start at every month (52,350 train and 1,679 test clips of
12+14 months). Values are min-max scaled with the CMIP extremes ({SST_MIN:.4f}..{SST_MAX:.4f} degC);
metrics get degC."""

SPLIT_RUNS = {
    "train": [("cmip6", m) for m in range(CMIP6_MODELS)] + [("cmip5", m) for m in range(CMIP5_MODELS - 2)],
    "val": [("cmip5", CMIP5_MODELS - 2)],
    "test": [("cmip5", CMIP5_MODELS - 1)],
}


def _xarray():
    try:
        import xarray
    except ImportError:
        raise UserError("the enso dataset needs xarray and netCDF4: pip install xarray netCDF4") from None
    return xarray


HINT = ("get enso_round1_train_20210201 from tianchi.aliyun.com/dataset/98942, then run "
        "'stbench data check enso-12-14' (it prints the expected layout)")


def data_file(root):
    root = Path(os.path.abspath(root))
    for path in (root / FOLDER / FILE, root / FOLDER / "enso_round1_train_20210201" / FILE):
        if path.exists():
            return path
    raise UserError(f"ENSO: {root / FOLDER / FILE} not found (nor {FOLDER}/enso_round1_train_20210201/{FILE}); {HINT}")


def _damaged(path, error):
    return UserError(f"ENSO: cannot read {path} ({type(error).__name__}: {error}); the file looks damaged, "
                     "download it again")


def open_sst(path):
    """(lazy sst array [year, month, lat, lon] on the Pacific crop, rows per CMIP6 run, rows per CMIP5 run)."""
    try:
        dataset = _xarray().open_dataset(path)
    except UserError:
        raise
    except Exception as error:  # netCDF4 / h5 / xarray each raise their own types for a damaged file
        raise _damaged(path, error) from None
    if VARIABLE not in dataset.variables or set(dataset[VARIABLE].dims) != set(DIMS):
        found = dataset[VARIABLE].dims if VARIABLE in dataset.variables else "absent"
        raise UserError(f"ENSO: {path}: variable '{VARIABLE}' must have dims {DIMS} (found {found})")
    sst = dataset[VARIABLE].transpose(*DIMS)
    lon = dataset["lon"].values
    sst = sst.sel(lon=lon[(lon >= LON_RANGE[0]) & (lon <= LON_RANGE[1])])
    years6, years5 = (int(dataset.attrs.get(name, default)) for name, default in
                      zip(YEARS_ATTRS, (CMIP6_YEARS, CMIP5_YEARS)))
    expected = CMIP6_MODELS * years6 + CMIP5_MODELS * years5
    if tuple(sst.shape[1:]) != (36,) + GRID or sst.shape[0] != expected:
        raise UserError(f"ENSO: {path}: '{VARIABLE}' has shape {tuple(dataset[VARIABLE].shape)}, "
                        f"{tuple(sst.shape)} after keeping longitudes {LON_RANGE[0]}..{LON_RANGE[1]}; expected "
                        f"({expected}, 36, {GRID[0]}, {GRID[1]}) there (15x{years6} CMIP6 + 17x{years5} CMIP5 rows)")
    return sst, years6, years5


def fold_rows(years):
    """(row, first month, last month) pieces that turn a run's overlapping 36-month rows into one series.

    PredBench's fold: every third row whole, then the tail of the last row: 12 * years + 24 months.
    """
    pieces = [(row, 0, 36) for row in range(0, years, 3)]
    remain = (years - 1) % 3
    if remain:
        pieces.append((years - 1, 36 - 12 * remain, 36))
    return pieces


def run_series(sst, path, years6, years5, ensemble, model):
    first = model * years6 if ensemble == "cmip6" else CMIP6_MODELS * years6 + model * years5
    pieces = fold_rows(years6 if ensemble == "cmip6" else years5)
    try:
        rows = np.asarray(sst.isel(year=[first + row for row, _, _ in pieces]).values, dtype=np.float32)
    except Exception as error:
        raise _damaged(path, error) from None
    series = np.concatenate([rows[i, lo:hi] for i, (_, lo, hi) in enumerate(pieces)])
    if not np.isfinite(series).all():
        raise UserError(f"ENSO: {path}: {ensemble.upper()} run {model + 1} holds NaN values; the file looks damaged")
    return series


class EnsoClips(Clips):
    """Windows of t_in + t_out consecutive months of each run, run after run (PredBench's order)."""

    def __init__(self, series, t_in, t_out, description=""):
        self.series, self.t_in, self.t_out = series, t_in, t_out
        self.counts = [max(0, len(s) - t_in - t_out + 1) for s in series]
        self.bounds = np.cumsum([0] + self.counts)
        self.description = description

    def __len__(self):
        return int(self.bounds[-1])

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(index)
        run = int(np.searchsorted(self.bounds, index, side="right")) - 1
        start = index - int(self.bounds[run])
        clip = self.series[run][start:start + self.t_in + self.t_out]
        clip = torch.from_numpy((clip - SST_MIN) / (SST_MAX - SST_MIN)).unsqueeze(1)
        return clip[: self.t_in], clip[self.t_in:]


def load_split(root, split):
    path = data_file(root)
    sst, years6, years5 = open_sst(path)
    return [run_series(sst, path, years6, years5, *run) for run in SPLIT_RUNS[split]]


def open_enso(root, split, t_in, t_out):
    if split not in SPLIT_RUNS:
        raise UserError(f"enso has splits train, val and test, not '{split}'")
    series = load_split(root, split)
    clips = EnsoClips(series, t_in, t_out)
    if len(clips) == 0:
        raise UserError(f"ENSO: the {split} runs hold {len(series[0])} months; a clip of {t_in + t_out} does not fit")
    clips.description = f"{FILE} {split}: {len(series)} run(s) of {len(series[0])} months, {len(clips)} clips"
    return clips


def check_enso(root):
    lines = [f"file: {data_file(root)}"]
    for split in SPLIT_RUNS:
        series = load_split(root, split)
        low, high = min(float(s.min()) for s in series), max(float(s.max()) for s in series)
        clips = sum(max(0, len(s) - 25) for s in series)
        lines.append(f"{split}: {len(series)} run(s), {sum(map(len, series))} months, {clips} clips of 12+14, "
                     f"{GRID[0]}x{GRID[1]}, SST anomaly {low:.2f}..{high:.2f} degC")
    return "\n".join(lines)


SPEC = DatasetSpec(
    name="enso",
    shape=(1,) + GRID,
    open=open_enso,
    max_length=12 * CMIP5_YEARS + 24,
    layout=LAYOUT,
    canonical_tasks=("enso-12-14",),
    value_range=(SST_MIN, SST_MAX),
    mean=SST_MIN,
    std=SST_MAX - SST_MIN,
    # nino34 comes from a metric plugin; the engine skips a default metric that is not installed.
    default_metrics=("mse", "mae", "rmse", "nino34"),
    metric_options={"spatial_norm": True, "nino34_box": NINO34_BOX, "nino_window": NINO_WINDOW,
                    "latitudes": LATITUDES, "longitudes": LONGITUDES},
    check=check_enso,
    splits=tuple(SPLIT_RUNS),
    image_origin="lower",  # latitudes ascend (-55 .. 60): row 0 is the southernmost
    description="ICAR-ENSO: monthly CMIP SST anomalies, Pacific 24x48 (5 deg)",
)


@hookimpl
def stbench_register_datasets(register):
    register(SPEC)
