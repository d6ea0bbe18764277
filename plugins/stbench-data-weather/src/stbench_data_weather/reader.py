"""Reading WeatherBench's yearly netCDF files into clips (numpy, torch, xarray), year by year and lazily.

Opening a split reads only the files' time coordinates; a clip reads its own frames from the files when it is
asked for (xarray, lazily indexed: only those time steps and levels leave the disk). When every frame the
split's clips use fits the memory budget (``STBENCH_WEATHER_MEMORY_MB``, default 1024 per process), each
year's frames are read once on first use and kept, which is what the small grids want; otherwise nothing is
kept. Training statistics stream over the training years in blocks of frames and are cached beside the data.
"""
import hashlib
import json
import os
import re
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from stbench import Clips, UserError, require
from stbench_data_common import copy_member, members, prepare_needed, staged_folder

from . import DATASETS, SOURCE, Dataset, Field

MEMORY_VARIABLE, MEMORY_MB = "STBENCH_WEATHER_MEMORY_MB", 1024
BLOCK, BLOCK_BYTES = 64, 64 * 2 ** 20  # frames read at once while computing statistics
STATISTICS = ".stbench-statistics"  # folder beside the variable folders caching the training statistics
HOUR = np.timedelta64(1, "h")

_infos: Dict[tuple, "FileInfo"] = {}
_timelines: Dict[tuple, "Timeline"] = {}
_statistics: Dict[tuple, Tuple[np.ndarray, np.ndarray]] = {}
_handles = {"pid": None, "files": {}}


def _xarray():
    return require("xarray", "the weather datasets", "xarray netCDF4")


def dataset_of(name: str) -> Dataset:
    return DATASETS[name]


def hint(dataset: Dataset, folders=None) -> str:
    """What to fetch (the zips of ``folders``, default all the dataset's), and the commands that lay it out and
    check it."""
    folders = tuple(folders or dataset.folders)
    zips = ", ".join(f"{folder}_{dataset.grid.degrees}deg.zip" for folder in folders)
    return (f"get {zips} from {SOURCE} ({dataset.grid.degrees}deg/), lay {'it' if len(folders) == 1 else 'them'} "
            f"out with 'stbench data prepare {dataset.task} --from <the zip, or a folder of zips>', then run "
            f"'stbench data check {dataset.task}' (it prints the expected layout)")


def year_pattern(folder: str, degrees: str):
    """``<folder>_<year>_<res>deg.nc``; the single-level subsets ship as ``geopotential_500hPa_<year>_...``."""
    return re.compile(rf"^{re.escape(folder)}(?:hPa)?_(\d{{4}})_{re.escape(degrees)}deg\.nc$")


# ---------------------------------------------------------------- files

def field_files(dataset: Dataset, field: Field, root) -> Tuple[Path, Dict[int, Path]]:
    """The folder holding ``field`` under ``root`` and its yearly files ``{year: path}``."""
    root, grid = Path(os.path.abspath(root)), dataset.grid
    empty = []
    for folder in field.folders:
        pattern = year_pattern(folder, grid.degrees)
        for base in grid.folders:
            directory = root / base / folder
            if directory.is_dir():
                files = {int(m[1]): directory / m[0] for m in map(pattern.match, sorted(os.listdir(directory))) if m}
                if files:
                    return directory, files
                empty.append((directory, folder))
    if empty:
        directory, folder = empty[0]
        raise UserError(f"{dataset.name}: {directory} holds no {folder}_<year>_{grid.degrees}deg.nc file; "
                        f"{hint(dataset, [dataset.folder(field)])}")
    folder = dataset.folder(field)
    tried = ", ".join(f"{base}/{folder}" for base in grid.folders[1:])
    zip_name = f"{folder}_{grid.degrees}deg.zip"
    downloads = prepare_needed(root, dataset.task, [zip_name] + [
        f"{base}/{pattern}" for base in grid.folders for pattern in (zip_name, f"{folder}*_????_{grid.degrees}deg.nc")])
    raise UserError(f"{dataset.name}: {root / grid.folders[0] / folder} not found (nor {tried}); "
                    f"{hint(dataset, [folder])}{downloads}")


@dataclass(frozen=True)
class FileInfo:
    """What a yearly file holds: its hourly times, where the field's levels sit, and its latitude order."""

    times: np.ndarray  # datetime64[ns]
    levels: Optional[Tuple[int, ...]]  # positions of the field's levels on the file's level axis; None: no axis
    flip: bool  # latitudes descend in the file: rows are reversed on reading


def _open(path):
    """An xarray dataset opened lazily (nothing read yet); a damaged file becomes a UserError."""
    try:
        return _xarray().open_dataset(path, cache=False)
    except UserError:
        raise
    except Exception as error:  # netCDF4 / h5 / xarray each raise their own types for a damaged file
        raise UserError(f"weather: cannot read {path} ({type(error).__name__}: {error}); "
                        "the file looks damaged, download it again") from None


def file_info(dataset: Dataset, field: Field, path: Path) -> FileInfo:
    """Checks a yearly file against ``field`` on the dataset's grid (variable, shape, levels) and describes it."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, field, dataset.grid)
    if key in _infos:
        return _infos[key]
    handle = _open(path)
    try:
        info = _describe(dataset, field, path, handle)
    finally:
        handle.close()
    _infos[key] = info
    return info


def _describe(dataset, field, path, handle) -> FileInfo:
    name, grid, variable = dataset.name, dataset.grid, field.variable
    if variable not in handle.variables:
        raise UserError(f"{name}: {path} has no variable '{variable}'; expected {field.label} files")
    data = handle[variable]
    shape, dims = tuple(data.shape), data.dims
    layered = len(shape) == 4
    if len(shape) not in (3, 4) or shape[-2:] != (grid.rows, grid.cols) or dims[0] != "time" or \
            (layered and not field.levels):
        expected = "(time, level, " if field.levels and layered else "(time, "
        raise UserError(f"{name}: {path}: '{variable}' has shape {shape} (dims {dims}); expected "
                        f"{expected}{grid.rows}, {grid.cols}) on the {grid.degrees} degree grid")
    levels = None
    if layered:
        axis = handle[dims[1]].values if dims[1] in handle.variables else np.arange(shape[1])
        found = {int(round(float(v))): i for i, v in enumerate(np.asarray(axis).reshape(-1))}
        lacking = [level for level in field.levels if level not in found]
        if lacking:
            raise UserError(f"{name}: {path} holds '{variable}' at {sorted(found)} hPa, not at "
                            f"{', '.join(map(str, lacking))} hPa")
        levels = tuple(found[level] for level in field.levels)
    elif len(field.levels) > 1:
        raise UserError(f"{name}: {path}: '{variable}' has no level axis (dims {dims}); {name} needs it at "
                        f"{', '.join(map(str, field.levels))} hPa: use WeatherBench's {field.folders[-1]} files")
    elif field.levels and "level" in handle.coords and handle["level"].size == 1 and \
            int(round(float(handle["level"].values.reshape(-1)[0]))) != field.levels[0]:
        raise UserError(f"{name}: {path} holds '{variable}' at {int(handle['level'].values.reshape(-1)[0])} hPa, "
                        f"not at {field.levels[0]} hPa")
    latitude = dims[-2]
    flip = bool(latitude in handle.coords and handle[latitude].size > 1 and
                float(handle[latitude][0]) > float(handle[latitude][-1]))
    try:
        times = np.asarray(handle["time"].values).astype("datetime64[ns]")
    except (TypeError, ValueError) as error:
        raise UserError(f"{name}: {path}: its time axis cannot be read as dates ({error})") from None
    return FileInfo(times, levels, flip)


def _dataset(path: str):
    """The file opened once per process (handles never cross a fork), again when it was replaced."""
    if _handles["pid"] != os.getpid():
        _handles["pid"], _handles["files"] = os.getpid(), {}
    files, stat = _handles["files"], os.stat(path)
    stamp = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if path not in files or files[path][0] != stamp:
        if path in files:
            files[path][1].close()
        files[path] = (stamp, _open(path))
    return files[path][1]


def read_frames(field: Field, path: str, info: FileInfo, local: np.ndarray) -> np.ndarray:
    """Time steps ``local`` (sorted, unique) of ``field`` from one yearly file: ``[n, C, H, W]`` float32, native
    units, rows south to north."""
    data = _dataset(path)[field.variable]
    selection = {data.dims[0]: np.asarray(local, dtype=np.int64)}
    if info.levels is not None:
        selection[data.dims[1]] = np.asarray(info.levels, dtype=np.int64)
    try:
        values = np.asarray(data.isel(selection).values, dtype=np.float32)
    except Exception as error:  # a damaged chunk surfaces only when read
        raise UserError(f"weather: cannot read '{field.variable}' from {path} ({type(error).__name__}: {error}); "
                        "the file looks damaged, download it again") from None
    if values.ndim == 3:
        values = values[:, None]
    if info.flip:
        values = values[:, :, ::-1]
    return np.ascontiguousarray(values)


# ---------------------------------------------------------------- the frames of a split

@dataclass
class Timeline:
    """The frames of one split: per position its time, the piece it belongs to, and for each field the file and
    time step holding it. Clips never span two pieces (PredBench: one piece per year) or a gap in time."""

    times: np.ndarray  # datetime64[ns], one per position
    piece: np.ndarray  # int32
    files: List[List[str]]  # per field
    file_index: List[np.ndarray]  # per field, int32 per position
    local: List[np.ndarray]  # per field, int32 per position
    infos: List[List[FileInfo]]  # per field, per file
    folders: List[Path]  # per field
    absent: List[int]  # years of the split without a file for some field
    fingerprint: str = ""
    frames: int = 0  # kept frames (OpenSTL) or hourly steps (PredBench)


def timeline(dataset: Dataset, root, split: str) -> Timeline:
    protocol = dataset.set.protocol
    if split not in protocol.splits:
        raise UserError(f"{dataset.name} has splits {', '.join(protocol.splits)}, not '{split}'")
    first, last = protocol.period(split)
    begin, end = np.datetime64(f"{first}-01-01", "ns"), np.datetime64(f"{last + 1}-01-01", "ns")
    listing = [field_files(dataset, field, root) for field in dataset.set.fields]
    used = [sorted((year, path) for year, path in files.items() if first - 1 <= year <= last + 1)
            for _, files in listing]
    stamp = tuple((str(path), path.stat().st_size, path.stat().st_mtime_ns) for files in used for _, path in files)
    key = (dataset.name, split, stamp)
    if key in _timelines:
        return _timelines[key]
    per_field, infos = [], []
    for field, files in zip(dataset.set.fields, used):
        stamps, owners, steps, field_infos = [], [], [], []
        for number, (_, path) in enumerate(files):
            info = file_info(dataset, field, path)
            inside = np.flatnonzero((info.times >= begin) & (info.times < end))
            stamps.append(info.times[inside])
            owners.append(np.full(len(inside), number, np.int32))
            steps.append(inside.astype(np.int32))
            field_infos.append(info)
        stamps = np.concatenate(stamps) if stamps else np.zeros(0, "datetime64[ns]")
        order = np.argsort(stamps, kind="stable")
        stamps, unique = np.unique(stamps[order], return_index=True)  # a time held twice: the first file's
        per_field.append((stamps, np.concatenate(owners or [np.zeros(0, np.int32)])[order][unique],
                          np.concatenate(steps or [np.zeros(0, np.int32)])[order][unique]))
        infos.append(field_infos)
    common = per_field[0][0]
    for stamps, _, _ in per_field[1:]:
        common = np.intersect1d(common, stamps)
    hours = protocol.hours
    if protocol.kind == "openstl":
        # OpenSTL: dataset.isel(time=slice(None, -1, step)) over the period's concatenated hourly steps
        times = common[0:max(len(common) - 1, 0):hours]
        piece = np.zeros(len(times), np.int32)
    else:
        times = common
        piece = (times.astype("datetime64[Y]").astype(np.int64) + 1970).astype(np.int32)
    file_index, local = [], []
    for stamps, owners, steps in per_field:
        where = np.searchsorted(stamps, times)
        file_index.append(owners[where] if len(times) else np.zeros(0, np.int32))
        local.append(steps[where] if len(times) else np.zeros(0, np.int32))
    years = set(range(first, last + 1))
    absent = sorted(y for files in used for y in years - {year for year, _ in files})
    result = Timeline(times, piece, [[str(p) for _, p in files] for files in used], file_index, local, infos,
                      [directory for directory, _ in listing], sorted(set(absent)),
                      hashlib.sha256(repr(stamp).encode()).hexdigest()[:16], len(times))
    _timelines[key] = result
    return result


def clip_starts(dataset: Dataset, line: Timeline, split: str, length: int) -> Tuple[np.ndarray, int]:
    """First positions of the split's clips of ``length`` frames and the step between a clip's positions."""
    protocol = dataset.set.protocol
    gap = 1 if protocol.kind == "openstl" else protocol.hours
    span = (length - 1) * gap
    count = len(line.times)
    if protocol.kind == "openstl":
        # OpenSTL's valid_idx leaves out the last possible window: starts 0 .. N - length - 1
        candidates = np.arange(max(count - length, 0))
    else:
        # PredBench (WeatherBenchDatasetNp): range(0, hours_in_year - length * interval, hour_stride) in each year
        stride, pieces = protocol.start_hours(split), []
        boundaries = np.flatnonzero(np.diff(line.piece)) + 1
        for begin, end in zip(np.r_[0, boundaries], np.r_[boundaries, count]):
            pieces.append(begin + np.arange(0, max(end - begin - length * gap, 0), stride))
        candidates = np.concatenate(pieces) if pieces else np.zeros(0, np.int64)
    if not len(candidates):
        return candidates.astype(np.int64), gap
    # a clip's frames must be evenly spaced in time inside one piece (a missing year or day breaks it)
    step = np.timedelta64(protocol.hours, "h")
    regular = np.r_[(np.diff(line.times) == step) & (np.diff(line.piece) == 0), False] if gap == 1 else None
    if gap == 1:
        breaks = np.r_[0, np.cumsum(~regular)]
        keep = breaks[candidates + span] - breaks[candidates] == 0
    else:
        ends = candidates + span
        keep = (line.times[ends] - line.times[candidates] == span * HOUR) & \
               (line.piece[ends] == line.piece[candidates])
    return candidates[keep].astype(np.int64), gap


# ---------------------------------------------------------------- statistics

def _stream(line: Timeline, fields, positions, grid):
    """Yield ``(field number, frames [n, C, H, W])`` over ``positions``, file by file, a block of frames at once
    (at most ``BLOCK`` frames or ``BLOCK_BYTES`` once widened to float64)."""
    for number, field in enumerate(fields):
        block = max(1, min(BLOCK, BLOCK_BYTES // (8 * len(field.names) * grid.rows * grid.cols)))
        owners = line.file_index[number][positions]
        for owner in np.unique(owners):
            local = np.unique(line.local[number][positions[owners == owner]])
            for start in range(0, len(local), block):
                yield number, read_frames(field, line.files[number][owner], line.infos[number][owner],
                                          local[start:start + block])


def train_statistics(dataset: Dataset, root) -> Tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (population, as numpy's) over every kept frame of the training years (OpenSTL's
    z-score), streamed in blocks; cached per process and in ``<variable folder>/../.stbench-statistics``."""
    line = timeline(dataset, root, "train")
    key = (dataset.name, line.fingerprint)
    if key in _statistics:
        return _statistics[key]
    first, last = dataset.set.protocol.period("train")
    if line.frames == 0:
        raise UserError(f"{dataset.name}: no time step of the training years {first}-{last} under "
                        f"{line.folders[0]}; they give the normalisation")
    cache = line.folders[0].parent / STATISTICS / f"{dataset.name}.json"
    try:
        stored = json.loads(cache.read_text())
        if stored.get("fingerprint") == line.fingerprint and stored.get("channels") == list(dataset.set.channels):
            result = np.array(stored["mean"], np.float64), np.array(stored["std"], np.float64)
            _statistics[key] = result
            return result
    except (OSError, ValueError, KeyError, TypeError):
        pass
    widths = [len(field.names) for field in dataset.set.fields]
    offsets = np.r_[0, np.cumsum(widths)]
    count = np.zeros(offsets[-1])
    mean, m2 = np.zeros(offsets[-1]), np.zeros(offsets[-1])
    for number, frames in _stream(line, dataset.set.fields, np.arange(line.frames), dataset.grid):
        frames = frames.astype(np.float64)
        if not np.isfinite(frames).all():
            raise UserError(f"{dataset.name}: the training years {first}-{last} hold NaN or infinite values of "
                            f"'{dataset.set.fields[number].variable}' under {line.folders[number]}; the files "
                            "look damaged")
        # Chan et al.'s pairwise update of the running mean and sum of squared deviations, per channel
        n = frames.shape[0] * frames.shape[2] * frames.shape[3]
        block_mean = frames.mean(axis=(0, 2, 3))
        block_m2 = ((frames - block_mean[None, :, None, None]) ** 2).sum(axis=(0, 2, 3))
        part = slice(offsets[number], offsets[number + 1])
        total = count[part] + n
        delta = block_mean - mean[part]
        mean[part] += delta * n / total
        m2[part] += block_m2 + delta ** 2 * count[part] * n / total
        count[part] = total
    std = np.sqrt(m2 / count)
    if (std == 0).any():
        flat = [name for name, s in zip(dataset.set.channels, std) if s == 0]
        raise UserError(f"{dataset.name}: channel(s) {', '.join(flat)} never vary over the training years "
                        f"{first}-{last}; the files look damaged")
    result = (mean, std)
    _statistics[key] = result
    try:
        cache.parent.mkdir(exist_ok=True)
        temporary = cache.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"dataset": dataset.name, "fingerprint": line.fingerprint,
                                         "channels": list(dataset.set.channels), "frames": line.frames,
                                         "mean": mean.tolist(), "std": std.tolist()}))
        os.replace(temporary, cache)
    except OSError:  # a read-only data root: the statistics are recomputed by the next process
        pass
    return result


def normalisation(dataset: Dataset, root) -> Tuple[np.ndarray, np.ndarray, bool]:
    """(mean, std, computed): the training years' statistics, or the set's fixed constants (PredBench)."""
    if dataset.set.mean is not None:
        return np.array(dataset.set.mean, np.float64), np.array(dataset.set.std, np.float64), False
    mean, std = train_statistics(dataset, root)
    return mean, std, True


# ---------------------------------------------------------------- clips

def memory_budget() -> int:
    value = os.environ.get(MEMORY_VARIABLE, "").strip()
    try:
        return int(float(value) * 2 ** 20) if value else MEMORY_MB * 2 ** 20
    except ValueError:
        raise UserError(f"{MEMORY_VARIABLE}={value!r}: give the memory budget of the weather readers in MB, "
                        "e.g. 4096") from None


class WeatherClips(Clips):
    """Clips of ``t_in + t_out`` frames read from the yearly files, normalised ``(x - mean) / std``.

    Item ``i`` takes positions ``starts[i] + gap * k`` of the split's timeline. With ``keep`` (the split's frames
    fit the memory budget) each file's frames are read once per process and held; otherwise every item reads
    its own frames.
    """

    def __init__(self, dataset: Dataset, line: Timeline, starts, gap, t_in, t_out, mean, std, keep=False,
                 description=""):
        self.name, self.line, self.starts, self.gap = dataset.name, line, np.asarray(starts, np.int64), gap
        self.t_in, self.t_out, self.keep, self.description = t_in, t_out, keep, description
        self.fields = dataset.set.fields
        self._mean = np.asarray(mean, np.float32)[:, None, None]
        self._std = np.asarray(std, np.float32)[:, None, None]
        self._held, self._pid = {}, None

    def __len__(self):
        return len(self.starts)

    def positions(self, index) -> np.ndarray:
        return self.starts[index] + self.gap * np.arange(self.t_in + self.t_out)

    def __getstate__(self):  # a worker process reads (and holds) its own frames
        return {**self.__dict__, "_held": {}, "_pid": None}

    def _frames_of(self, number, owner, local):
        """Frames ``local`` of field ``number`` from file ``owner``: from memory when held, else from disk."""
        line, field = self.line, self.fields[number]
        path, info = line.files[number][owner], line.infos[number][owner]
        if not self.keep:
            unique, inverse = np.unique(local, return_inverse=True)
            return read_frames(field, path, info, unique)[inverse]
        if self._pid != os.getpid():
            self._held, self._pid = {}, os.getpid()
        if (number, owner) not in self._held:
            span = self.gap * np.arange(self.t_in + self.t_out)
            used = np.unique((self.starts[:, None] + span[None]).reshape(-1))
            used = used[line.file_index[number][used] == owner]
            steps = np.unique(line.local[number][used])
            self._held[(number, owner)] = (steps, read_frames(field, path, info, steps))
        steps, frames = self._held[(number, owner)]
        return frames[np.searchsorted(steps, local)]

    def native(self, index) -> np.ndarray:
        """Item ``index`` in native units, ``[t_in + t_out, C, H, W]`` float32."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        positions, line = self.positions(index), self.line
        parts = []
        for number in range(len(self.fields)):
            owners, local = line.file_index[number][positions], line.local[number][positions]
            part = None
            for owner in np.unique(owners):
                rows = np.flatnonzero(owners == owner)
                frames = self._frames_of(number, owner, local[rows])
                if part is None:
                    part = np.empty((len(positions),) + frames.shape[1:], np.float32)
                part[rows] = frames
            parts.append(part)
        clip = np.concatenate(parts, axis=1)
        if not np.isfinite(clip).all():
            raise UserError(f"{self.name}: the frames of {str(line.times[positions[0]])[:13]}h hold NaN or infinite "
                            "values; the files look damaged")
        return clip

    def __getitem__(self, index):
        clip = torch.from_numpy((self.native(index) - self._mean) / self._std)
        return clip[: self.t_in], clip[self.t_in:]


def period_words(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def _units(dataset: Dataset):
    return [field.unit for field in dataset.set.fields for _ in field.names]


def _statistics_words(dataset, mean, std, computed) -> str:
    if not computed:
        return f"PredBench's fixed per-channel mean and std ({len(mean)} channels)"
    units = _units(dataset)
    if len(mean) == 1:
        return f"train mean {mean[0]:.3f} {units[0]}, std {std[0]:.3f} {units[0]}"
    return "train mean / std " + ", ".join(f"{name} {m:.4g} / {s:.4g}"
                                            for name, m, s in zip(dataset.set.channels, mean, std))


def open_weather(name, root, split, t_in, t_out):
    dataset = dataset_of(name)
    line = timeline(dataset, root, split)
    mean, std, computed = normalisation(dataset, root)
    length = t_in + t_out
    starts, gap = clip_starts(dataset, line, split, length)
    first, last = dataset.set.protocol.period(split)
    words = dataset.set.protocol.frame_words if dataset.set.protocol.kind == "openstl" else "hourly"
    if len(starts) == 0:
        need = (f"at least {length + 1} in a row" if dataset.set.protocol.kind == "openstl" else
                f"more than {length * gap} hours inside one year")
        raise UserError(f"{name}: the {split} years {period_words(first, last)} give {line.frames} {words} frames "
                        f"under {line.folders[0]}; a clip of {length} frames needs {need}")
    channels, (rows, cols) = len(dataset.set.channels), (dataset.grid.rows, dataset.grid.cols)
    used = len(np.unique((starts[:, None] + gap * np.arange(length)[None]).reshape(-1)))
    keep = used * channels * rows * cols * 4 <= memory_budget()
    clips = WeatherClips(dataset, line, starts, gap, t_in, t_out, mean, std, keep)
    absent = f" (years absent: {', '.join(map(str, line.absent))})" if line.absent else ""
    clips.description = (f"{' + '.join(dataset.folders)} {period_words(first, last)}{absent}: {line.frames} {words} "
                         f"frames, {len(clips)} clips; {_statistics_words(dataset, mean, std, computed)}")
    if computed:
        # the training years' statistics of this root: stbench de-normalises with them (stbench.data.statistics_of)
        clips.mean, clips.std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    return clips


def check_weather(name, root):
    dataset = dataset_of(name)
    protocol = dataset.set.protocol
    lines = []
    for field in dataset.set.fields:
        directory, files = field_files(dataset, field, root)
        years = sorted(files)
        levels = f" at {', '.join(map(str, field.levels))} hPa" if field.levels else ""
        lines.append(f"'{field.variable}'{levels}: {len(files)} yearly files ({years[0]}-{years[-1]}) under "
                     f"{directory}")
    t_in, t_out = (int(n) for n in dataset.set.tasks[0].split("-"))
    for split in protocol.splits:
        first, last = protocol.period(split)
        line = timeline(dataset, root, split)
        starts, gap = clip_starts(dataset, line, split, t_in + t_out)
        absent = f"; years absent: {', '.join(map(str, line.absent))}" if line.absent else ""
        if protocol.kind == "openstl":
            lines.append(f"{split} {period_words(first, last)}: {line.frames} {protocol.frame_words} frames of "
                         f"{dataset.grid.rows}x{dataset.grid.cols}, {len(starts)} clips of {t_in}+{t_out}{absent}")
        else:
            lines.append(f"{split} {period_words(first, last)}: {line.frames} hourly steps of {dataset.grid.rows}x"
                         f"{dataset.grid.cols}, {len(starts)} clips of {t_in}+{t_out} (frames {gap} h apart, one "
                         f"starting every {protocol.start_hours(split)} h){absent}")
    mean, std, computed = normalisation(dataset, root)
    label = "normalisation (train years)" if computed else "normalisation"
    lines.append(f"{label}: {_statistics_words(dataset, mean, std, computed).replace('train ', '')}")
    return "\n".join(lines)


# ---------------------------------------------------------------- prepare

def prepare_weather(name, source, root):
    """Put WeatherBench's yearly files of the dataset's variables (from its zips, a tar, or a folder of zips or
    .nc files) where ``open`` reads them, one variable folder at a time."""
    dataset = dataset_of(name)
    grid, root, source = dataset.grid, Path(os.path.abspath(root)), Path(os.path.abspath(source))
    fields = {}
    for field in dataset.set.fields:
        for folder in field.folders:
            fields.setdefault(folder, field)
    patterns = [(folder, year_pattern(folder, grid.degrees)) for folder in fields]
    present = {folder: base for folder in fields for base in grid.folders if (root / base / folder).is_dir()}
    written, skipped = {}, set()
    with ExitStack() as stack:
        staging = {}
        for member, opener in members(source):
            base_name = PurePosixPath(member).name
            found = next(((folder, m) for folder, pattern in patterns if (m := pattern.match(base_name))), None)
            if found is None:
                continue
            folder, match = found
            if folder in present:
                skipped.add(folder)
                continue
            if folder not in staging:
                staging[folder] = stack.enter_context(staged_folder(root / grid.folders[0] / folder))
            path = copy_member(opener, staging[folder] / match[0])
            try:  # a damaged or foreign file fails now, before the folder is in place
                _describe_file(dataset, fields[folder], path)
            except UserError:
                raise UserError(f"{member} in {source} cannot be read as a {grid.degrees} degree "
                                f"'{fields[folder].variable}' file (damaged or another variable); download it "
                                "again") from None
            written.setdefault(folder, []).append(int(match[1]))
        if not written and not skipped:
            wanted = " or ".join(f"{folder}_<year>_{grid.degrees}deg.nc" for folder in dataset.folders)
            raise UserError(f"{source} holds no {wanted} file; {hint(dataset)}")
    if not written:
        folder = sorted(skipped)[0]
        raise UserError(f"{root / present[folder] / folder} already holds the data; remove it first or prepare "
                        "into another --data-root")
    wanted = [year for _, first, last in dataset.set.protocol.periods for year in range(first, last + 1)]
    parts = []
    for folder, years in written.items():
        lacking = [year for year in wanted if year not in years]
        note = f"; years used by the splits but absent: {', '.join(map(str, lacking))}" if lacking else ""
        parts.append(f"{len(years)} yearly files ({min(years)}-{max(years)}) written to "
                     f"{root / grid.folders[0] / folder}{note}")
    for folder in sorted(skipped):
        parts.append(f"{root / present[folder] / folder} already in place, left as it is")
    missing = []
    for field in dataset.set.fields:
        if not any(folder in written or folder in present for folder in field.folders):
            missing.append(f"{dataset.folder(field)}_{grid.degrees}deg.zip")
    still = f"; still needed: {', '.join(dict.fromkeys(missing))} (prepare each the same way)" if missing else ""
    return f"{name}: {'; '.join(parts)}{still}; check them with 'stbench data check {dataset.task}'"


def _describe_file(dataset, field, path):
    handle = _open(path)
    try:
        _describe(dataset, field, path, handle)
    finally:
        handle.close()
