"""Reading the ICAR-ENSO SST file into clips (numpy, torch, xarray)."""
import os
from pathlib import Path

import numpy as np
import torch
from stbench import Clips, UserError, require

from . import (CMIP5_MODELS, CMIP5_YEARS, CMIP6_MODELS, CMIP6_YEARS, DIMS, FILE, FOLDER, GRID, HINT, LON_RANGE,
               SPLIT_RUNS, SST_MAX, SST_MIN, VARIABLE, YEARS_ATTRS)


def _xarray():
    return require("xarray", "the enso dataset", "xarray netCDF4")


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
