"""The YAML file that declares a custom dataset: reading it safely and validating every key."""
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from stbench import UserError, parse_task, yaml_text

NAME = re.compile(r"^[a-z][a-z0-9_]*(?:-[a-z][a-z0-9_]*)*$")  # a task's dataset part: mydata-10-10 parses back
SPLITS = ("train", "val", "test")
LAYOUTS = ("NTCHW", "NTHWC")
NORMALISATIONS = ("range", "zscore", "none")
TOP_KEYS = ("name", "description", "files", "splits", "stride", "frames", "value_range", "scale", "normalise",
            "canonical_tasks", "metrics", "hparams_like", "image_origin", "max_length")
SOURCE_KEYS = ("path", "key", "layout")
FRAMES_KEYS = ("size", "channels")


class ConfigError(UserError):
    """A custom dataset's YAML file is wrong; the message names the file and the key."""


@dataclass
class Source:
    """Where one split's sequences (or all of them, when split by fractions) are stored."""

    path: str
    key: Optional[str] = None  # the array of an .npz, the dataset of an HDF5 file
    layout: str = "NTCHW"


@dataclass
class CustomConfig:
    """A validated custom-dataset declaration."""

    file: Path
    name: str
    description: str
    files: Dict[str, Source]  # split -> source; a single source under "*" when split by fractions
    fractions: Dict[str, float]
    stride: Dict[str, Optional[int]]  # None: the clip length (windows side by side)
    size: Optional[Tuple[int, int]]
    channels: Optional[int]
    value_range: Optional[Tuple[float, float]]
    value_range_given: bool
    scale: Optional[float]
    normalise: Union[None, str, Tuple[List[float], List[float]]]
    canonical_tasks: List[str]
    metrics: Optional[List[str]]
    hparams_like: Optional[str]
    image_origin: str
    max_length: Optional[int]
    splits: List[str] = field(default_factory=list)


# a declaration is a few dozen values; the loader refuses anchors and aliases that expand past this
MAX_VALUES = 10_000
MAX_MESSAGE = 300


def _fail(file, message):
    text = str(message).replace("\n", " ")
    if len(text) > MAX_MESSAGE:  # a value quoted from the file: its start, never all of it
        text = text[:MAX_MESSAGE] + " ..."
    raise ConfigError(f"custom dataset {file}: {text}")


def _check_keys(file, where, mapping, known):
    unknown = sorted(str(key) for key in mapping if key not in known)
    if unknown:
        _fail(file, f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} in {where}; "
                    f"the known keys are {', '.join(known)}")


def _number(file, key, value, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(file, f"{key} must be a number, got {value!r}")
    if positive and value <= 0:
        _fail(file, f"{key} must be positive, got {value!r}")
    return float(value)


def _integer(file, key, value, least=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        _fail(file, f"{key} must be a whole number >= {least}, got {value!r}")
    return int(value)


def _source(file, where, value) -> Source:
    if isinstance(value, str):
        value = {"path": value}
    if not isinstance(value, dict):
        _fail(file, f"{where} must be a path or a mapping with keys {', '.join(SOURCE_KEYS)}, got {value!r}")
    _check_keys(file, where, value, SOURCE_KEYS)
    if not isinstance(value.get("path"), str) or not value["path"].strip():
        _fail(file, f"{where}.path must name a .npy / .npz / .h5 file or a folder of videos or image sequences")
    key = value.get("key")
    if key is not None and not isinstance(key, str):
        _fail(file, f"{where}.key must be a string (the .npz array or HDF5 dataset), got {key!r}")
    layout = str(value.get("layout", "NTCHW")).upper()
    if layout not in LAYOUTS:
        _fail(file, f"{where}.layout must be one of {', '.join(LAYOUTS)}, got {value.get('layout')!r}")
    suffix = Path(value["path"]).suffix.lower()
    if suffix in (".npz", ".h5", ".hdf5") and key is None:
        _fail(file, f"{where}.key must name the {'array' if suffix == '.npz' else 'dataset'} inside {value['path']}")
    return Source(value["path"].strip(), key, layout)


def _files_and_fractions(file, data):
    files, splits = data.get("files"), data.get("splits")
    if files is None:
        _fail(file, "files is required: a .npy / .npz / .h5 array [N, T, C, H, W] or a folder of videos or image "
                    "sequences, or one such source per split (files: {train: ..., test: ...})")
    per_split = isinstance(files, dict) and set(files) <= set(SPLITS) and files and "path" not in files
    if per_split:
        if splits is not None:
            _fail(file, "give splits only with a single source in files (files names one source per split here)")
        sources = {split: _source(file, f"files.{split}", value) for split, value in files.items()}
        fractions = {}
    else:
        sources = {"*": _source(file, "files", files)}
        if not isinstance(splits, dict) or not splits:
            _fail(file, "splits is required with a single source: the fraction of the sequences (in order) each "
                        "split takes, e.g. splits: {train: 0.8, test: 0.2}")
        _check_keys(file, "splits", splits, SPLITS)
        fractions = {split: _number(file, f"splits.{split}", value, positive=True) for split, value in splits.items()}
        if sum(fractions.values()) > 1.0 + 1e-9:
            _fail(file, f"the split fractions add up to {sum(fractions.values()):g}; they may add up to 1 at most")
    names = sorted(sources) if per_split else sorted(fractions)
    for needed in ("train", "test"):
        if needed not in names:
            _fail(file, f"a '{needed}' split is required ({'files' if per_split else 'splits'} names "
                        f"{', '.join(names)})")
    return sources, fractions, [split for split in SPLITS if split in names]


def _stride(file, value, splits):
    if value is None:
        return {split: None for split in splits}
    if isinstance(value, dict):
        _check_keys(file, "stride", value, SPLITS)
        return {split: (_integer(file, f"stride.{split}", value[split]) if split in value else None)
                for split in splits}
    stride = _integer(file, "stride", value)
    return {split: stride for split in splits}


def _normalise(file, value, value_range, given):
    if value is None:
        return None  # decided once the stored dtype is known: range when the values are bounded, else zscore
    if isinstance(value, str):
        if value not in NORMALISATIONS:
            _fail(file, f"normalise must be one of {', '.join(NORMALISATIONS)} or {{mean: ..., std: ...}}, "
                        f"got {value!r}")
        if value == "range" and given and value_range is None:
            _fail(file, "normalise: range needs a bounded value_range [low, high]")
        return value
    if not isinstance(value, dict):
        _fail(file, f"normalise must be one of {', '.join(NORMALISATIONS)} or {{mean: ..., std: ...}}, got {value!r}")
    _check_keys(file, "normalise", value, ("mean", "std"))
    stats = []
    for key in ("mean", "std"):
        if key not in value:
            _fail(file, f"normalise.{key} is required (one number, or one per channel)")
        items = value[key] if isinstance(value[key], list) else [value[key]]
        stats.append([_number(file, f"normalise.{key}", item, positive=key == "std") for item in items])
    return tuple(stats)


def parse(file: Path, text: str) -> CustomConfig:
    """Validate one YAML text; a ConfigError (one line naming the file and the key) for any mistake."""
    try:
        data = yaml_text(text, f"custom dataset {file}", budget=MAX_VALUES)
    except UserError as error:
        raise ConfigError(str(error)) from None
    if not isinstance(data, dict):
        _fail(file, "expected a mapping of keys (name, files, splits, ...)")
    _check_keys(file, "the file", data, TOP_KEYS)
    name = data.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        _fail(file, f"name must be lowercase letters, digits and _, parts joined by '-' (a task is "
                    f"<name>-<T_in>-<T_out>), got {name!r}")
    sources, fractions, splits = _files_and_fractions(file, data)

    frames = data.get("frames") or {}
    if not isinstance(frames, dict):
        _fail(file, f"frames must be a mapping with keys {', '.join(FRAMES_KEYS)}")
    _check_keys(file, "frames", frames, FRAMES_KEYS)
    size = frames.get("size")
    if size is not None:
        if not isinstance(size, list) or len(size) != 2:
            _fail(file, f"frames.size must be [height, width], got {size!r}")
        size = tuple(_integer(file, "frames.size", item) for item in size)
    channels = frames.get("channels")
    if channels is not None and channels not in (1, 3):
        _fail(file, f"frames.channels must be 1 (grey) or 3 (RGB), got {channels!r}")

    given = "value_range" in data
    value_range = data.get("value_range")
    if value_range is not None:
        if not isinstance(value_range, list) or len(value_range) != 2:
            _fail(file, f"value_range must be [low, high] or null (unbounded), got {value_range!r}")
        low, high = (_number(file, "value_range", item) for item in value_range)
        if not low < high:
            _fail(file, f"value_range must have low < high, got {value_range!r}")
        value_range = (low, high)
    scale = data.get("scale")
    if scale is not None:
        scale = _number(file, "scale", scale, positive=True)

    tasks = data.get("canonical_tasks")
    if not isinstance(tasks, list) or not tasks:
        _fail(file, f"canonical_tasks must list at least one task, e.g. [{name}-10-10]")
    for text in tasks:
        try:
            task = parse_task(str(text))
        except UserError as error:
            _fail(file, f"canonical_tasks: {error}")
        if task.dataset != name:
            _fail(file, f"canonical task {text!r} is not a task of {name} (expected {name}-<T_in>-<T_out>)")
    metrics = data.get("metrics")
    if metrics is not None and (not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics)):
        _fail(file, f"metrics must be a list of metric names, got {metrics!r}")
    hparams_like = data.get("hparams_like")
    if hparams_like is not None and not isinstance(hparams_like, str):
        _fail(file, f"hparams_like must name a dataset whose model settings to borrow, got {hparams_like!r}")
    origin = data.get("image_origin", "upper")
    if origin not in ("upper", "lower"):
        _fail(file, f"image_origin must be upper or lower, got {origin!r}")
    max_length = data.get("max_length")
    if max_length is not None:
        max_length = _integer(file, "max_length", max_length, least=2)
    description = data.get("description", "")
    if not isinstance(description, str):
        _fail(file, "description must be a string")
    return CustomConfig(
        file=file, name=name, description=description, files=sources, fractions=fractions,
        stride=_stride(file, data.get("stride"), splits), size=size, channels=channels, value_range=value_range,
        value_range_given=given, scale=scale, normalise=_normalise(file, data.get("normalise"), value_range, given),
        canonical_tasks=[str(task).lower() for task in tasks], metrics=metrics, hparams_like=hparams_like,
        image_origin=origin, max_length=max_length, splits=splits)
