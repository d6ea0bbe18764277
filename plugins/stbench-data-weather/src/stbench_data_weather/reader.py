"""Reading and preparing WeatherBench 2 m temperature into clips (numpy, torch, xarray)."""
import os
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from stbench import Clips, UserError, require
from stbench_data_common import copy_member, members, prepare_needed, staged_folder

from . import FOLDERS, GRID, HINT, PERIODS, STEP, VARIABLE, VARIABLE_FOLDER, YEAR_FILE

_cache = {}


def _xarray():
    return require("xarray", "the weather dataset", "xarray netCDF4")


def variable_files(root):
    for folder in FOLDERS:
        directory = Path(os.path.abspath(root)) / folder / VARIABLE_FOLDER
        if directory.is_dir():
            files = sorted(directory.glob("*.nc"))
            if not files:
                raise UserError(f"weather: {directory} holds no .nc file; {HINT}")
            return files
    tried = ", ".join(f"{folder}/{VARIABLE_FOLDER}" for folder in FOLDERS[1:])
    downloads = prepare_needed(root, "weather-12-12", [f"{VARIABLE_FOLDER}_5.625deg.zip"] + [
        f"{folder}/{pattern}" for folder in FOLDERS for pattern in (f"{VARIABLE_FOLDER}_5.625deg.zip",
                                                                   f"{VARIABLE_FOLDER}_*_5.625deg.nc")])
    raise UserError(f"weather: {Path(os.path.abspath(root)) / FOLDERS[0] / VARIABLE_FOLDER} not found (nor {tried}); "
                    f"{HINT}{downloads}")


def _open(path):
    """An xarray dataset opened lazily, with its variable checked; damaged files become a UserError."""
    try:
        dataset = _xarray().open_dataset(path)
    except UserError:
        raise
    except Exception as error:  # netCDF4 / h5 / xarray each raise their own types for a damaged file
        raise UserError(f"weather: cannot read {path} ({type(error).__name__}: {error}); "
                        "the file looks damaged, download it again") from None
    if VARIABLE not in dataset.variables:
        dataset.close()
        raise UserError(f"weather: {path} has no variable '{VARIABLE}'; expected 2 m temperature files")
    if "lat" in dataset.coords and dataset["lat"].size > 1 and float(dataset["lat"][0]) > float(dataset["lat"][-1]):
        dataset = dataset.sortby("lat")  # north-to-south files: rows put south to north like WeatherBench's
    shape = tuple(dataset[VARIABLE].shape)
    if len(shape) != 3 or shape[1:] != GRID or "time" not in dataset[VARIABLE].dims:
        dataset.close()
        raise UserError(f"weather: {path}: '{VARIABLE}' has shape {shape} (dims {dataset[VARIABLE].dims}); "
                        f"expected (time, {GRID[0]}, {GRID[1]}) on the 5.625 degree grid")
    return dataset


def load_period(root, split):
    """Daily frames [N, 1, 32, 64] (Kelvin, float32) of one split's years, read from the yearly files."""
    files = variable_files(root)
    key = (tuple((str(p), p.stat().st_mtime_ns) for p in files), split)
    if key in _cache:
        return _cache[key]
    first, last = PERIODS[split]
    begin, end = np.datetime64(f"{first}-01-01"), np.datetime64(f"{int(last) + 1}-01-01")
    pieces = []  # (path, local indices inside the period, their times)
    for path in files:
        dataset = _open(path)
        try:
            times = dataset["time"].values.astype("datetime64[ns]")
        finally:
            dataset.close()
        inside = np.flatnonzero((times >= begin) & (times < end))
        if len(inside):
            pieces.append((path, inside, times[inside]))
    pieces.sort(key=lambda piece: piece[2][0])
    total = sum(len(piece[1]) for piece in pieces)
    # OpenSTL: dataset.isel(time=slice(None, -1, step)) over the concatenated period
    chosen = set(range(0, max(total - 1, 0), STEP))
    frames, offset = [], 0
    for path, inside, _ in pieces:
        local = [i for n, i in enumerate(inside) if offset + n in chosen]
        offset += len(inside)
        if not local:
            continue
        dataset = _open(path)
        try:
            frames.append(np.asarray(dataset[VARIABLE].isel(time=np.array(local)).values, dtype=np.float32))
        except Exception as error:
            raise UserError(f"weather: cannot read '{VARIABLE}' from {path} ({type(error).__name__}: {error}); "
                            "the file looks damaged, download it again") from None
        finally:
            dataset.close()
    array = np.concatenate(frames)[:, None] if frames else np.zeros((0, 1) + GRID, np.float32)
    if not np.isfinite(array).all():
        raise UserError(f"weather: the {split} years {first}-{last} hold NaN or infinite temperatures; "
                        "the files look damaged")
    _cache[key] = array
    return array


def train_statistics(root):
    """Per-channel mean and std of the training years (OpenSTL's z-score)."""
    frames = load_period(root, "train")
    if len(frames) == 0:
        first, last = PERIODS["train"]
        raise UserError(f"weather: no time step of the training years {first}-{last} under "
                        f"{variable_files(root)[0].parent}; they give the normalisation")
    return frames.mean(axis=(0, 2, 3)), frames.std(axis=(0, 2, 3))


class WeatherClips(Clips):
    """Windows of t_in + t_out consecutive daily frames, z-scored."""

    def __init__(self, frames, t_in, t_out, description=""):
        self.frames, self.t_in, self.t_out = frames, t_in, t_out
        self.description = description

    def __len__(self):
        # OpenSTL's valid_idx leaves out the last possible window; kept so counts match the papers
        return max(0, len(self.frames) - self.t_in - self.t_out)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(index)
        clip = torch.from_numpy(self.frames[index:index + self.t_in + self.t_out])
        return clip[: self.t_in], clip[self.t_in:]


def open_weather(root, split, t_in, t_out):
    if split not in PERIODS:
        raise UserError(f"weather has splits train, val and test, not '{split}'")
    mean, std = train_statistics(root)
    frames = load_period(root, split)
    clips = WeatherClips((frames - mean[None, :, None, None]) / std[None, :, None, None], t_in, t_out)
    first, last = PERIODS[split]
    if len(clips) == 0:
        raise UserError(f"weather: the {split} years {first}-{last} give {len(frames)} daily frames under "
                        f"{variable_files(root)[0].parent}; a clip of {t_in + t_out} frames needs at least "
                        f"{t_in + t_out + 1}")
    clips.description = (f"{VARIABLE_FOLDER} {first}-{last}: {len(frames)} daily frames, {len(clips)} clips; "
                         f"train mean {mean[0]:.3f} K, std {std[0]:.3f} K")
    # the training years' statistics of this root: stbench de-normalises with them (stbench.data.statistics_of)
    clips.mean, clips.std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    return clips


def check_weather(root):
    lines = [f"files: {len(variable_files(root))} under {variable_files(root)[0].parent}"]
    mean, std = train_statistics(root)
    for split, (first, last) in PERIODS.items():
        frames = load_period(root, split)
        value = f", {frames.min():.1f}..{frames.max():.1f} K" if len(frames) else ""
        lines.append(f"{split} {first}-{last}: {len(frames)} daily frames of {GRID[0]}x{GRID[1]}, "
                     f"{max(0, len(frames) - 24)} clips of 12+12{value}")
    lines.append(f"normalisation (train years): mean {mean[0]:.3f} K, std {std[0]:.3f} K")
    return "\n".join(lines)


def prepare_weather(source, root):
    """Put WeatherBench's yearly 2m_temperature .nc files (from its zip, a tar, or a folder) where open reads them."""
    target = Path(os.path.abspath(root)) / FOLDERS[0] / VARIABLE_FOLDER
    for folder in FOLDERS[1:]:
        if (Path(os.path.abspath(root)) / folder / VARIABLE_FOLDER).is_dir():
            raise UserError(f"{Path(os.path.abspath(root)) / folder / VARIABLE_FOLDER} already holds the data "
                            "(OpenSTL's folder name); remove it first or prepare into another --data-root")
    years = []
    with staged_folder(target) as staging:
        for member, opener in members(source):
            match = YEAR_FILE.match(PurePosixPath(member).name)
            if match:
                path = copy_member(opener, staging / match[0])
                try:  # a damaged or foreign file fails now, before the folder is in place
                    _open(path).close()
                except UserError:
                    raise UserError(f"{member} in {Path(os.path.abspath(source))} cannot be read as a 5.625 degree "
                                    f"'{VARIABLE}' file (damaged or another variable); download it again") from None
                years.append(int(match[1]))
        if not years:
            raise UserError(f"{Path(os.path.abspath(source))} holds no {VARIABLE_FOLDER}_<year>_5.625deg.nc file; "
                            f"{HINT}")
    wanted = [year for first, last in PERIODS.values() for year in range(int(first), int(last) + 1)]
    lacking = [year for year in wanted if year not in years]
    note = f"; years used by the splits but absent: {', '.join(map(str, lacking))}" if lacking else ""
    return (f"weather: {len(years)} yearly files ({min(years)}-{max(years)}) written to {target}{note}; check them "
            "with 'stbench data check weather-12-12'")
