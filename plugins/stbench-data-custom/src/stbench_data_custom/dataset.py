"""A DatasetSpec from a validated custom-dataset declaration: splits, clip windows, values and the data check."""
import os
from functools import partial
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch

from stbench import Clips, DatasetSpec, UserError, parse_task

from .config import SPLITS, CustomConfig
from .sources import open_source

UNBOUNDED_MAX_LENGTH = 100_000  # sequences of unknown length (folders): open() reports what does not fit
STATISTICS_SEQUENCES = 64  # z-score statistics come from this many training sequences, evenly spaced


def _what(config: CustomConfig) -> str:
    return f"custom dataset '{config.name}' ({config.file})"


def source_path(config: CustomConfig, root, split: str) -> Tuple[Path, str]:
    """(absolute path of the split's source, its key in files); relative paths start at the data root."""
    key = split if split in config.files else "*"
    path = Path(config.files[key].path).expanduser()
    return Path(os.path.abspath(path if path.is_absolute() else Path(root) / path)), key


def open_reader(config: CustomConfig, root, split: str):
    path, key = source_path(config, root, split)
    source = config.files[key]
    where = f"files.{key}" if key != "*" else "files"
    try:
        return open_source(path, source.key, source.layout, config.size, config.channels, _what(config))
    except UserError as error:
        raise UserError(f"{error} ({where} in the YAML file; 'stbench data check {config.canonical_tasks[0]}' "
                        "checks it)") from None


def split_sequences(config: CustomConfig, count: int, split: str) -> range:
    """The sequences of one split: all of its own source, or its fraction of the single source, in order."""
    if not config.fractions:
        return range(count)
    bounds, total = {}, 0.0
    for name in SPLITS:
        if name in config.fractions:
            first = round(total * count)
            total += config.fractions[name]
            bounds[name] = range(first, round(total * count))
    return bounds[split]


def values(config: CustomConfig, dtype) -> Tuple[float, Optional[Tuple[float, float]], object]:
    """(scale from stored to native values, native value range, normalisation) once the stored dtype is known.

    8-bit data (and every folder of frames) default to scale 1/255 and range [0, 1]; other data to scale 1 and
    an unbounded range; normalisation defaults to the range when bounded, else z-scores of the training split.
    """
    eight_bit = np.dtype(dtype) == np.uint8
    scale = config.scale if config.scale is not None else (1 / 255 if eight_bit and not config.value_range_given
                                                           else 1.0)
    value_range = config.value_range if config.value_range_given else ((0.0, 1.0) if eight_bit else None)
    normalise = config.normalise or ("range" if value_range is not None else "zscore")
    if normalise == "range" and value_range is None:
        raise UserError(f"{_what(config)}: normalise: range needs a bounded value_range [low, high]")
    return scale, value_range, normalise


class CustomClips(Clips):
    """Windows of ``t_in + t_out`` frames of each sequence, scaled to native values and normalised."""

    def __init__(self, reader, clips, t_in, t_out, scale, mean, std, description=""):
        self.reader, self.clips, self.t_in, self.t_out = reader, clips, int(t_in), int(t_out)
        self.scale, self.description = scale, description
        self._mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1, 1, 1)
        self._std = torch.as_tensor(std, dtype=torch.float32).reshape(-1, 1, 1)

    def __len__(self):
        return len(self.clips)

    def native(self, index) -> torch.Tensor:
        sequence, start = self.clips[index]
        return self.reader.read(sequence, start, self.t_in + self.t_out) * self.scale

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(index)
        clip = (self.native(index) - self._mean) / self._std
        return clip[: self.t_in], clip[self.t_in:]


def train_statistics(config: CustomConfig, root, scale) -> Tuple[List[float], List[float]]:
    """Per-channel mean and std of native values over evenly spaced training sequences."""
    reader = open_reader(config, root, "train")
    sequences = list(split_sequences(config, reader.count, "train"))
    if not sequences:
        raise UserError(f"{_what(config)}: the train split holds no sequence; its z-score statistics need one")
    chosen = [sequences[i] for i in np.linspace(0, len(sequences) - 1, min(STATISTICS_SEQUENCES, len(sequences)),
                                                dtype=int)]
    lengths = reader.sequence_lengths()
    total = count = squares = 0.0
    for sequence in sorted(set(chosen)):
        frames = reader.read(sequence, 0, lengths[sequence]).double() * scale
        total = total + frames.sum(dim=(0, 2, 3))
        squares = squares + (frames ** 2).sum(dim=(0, 2, 3))
        count += frames.shape[0] * frames.shape[2] * frames.shape[3]
    mean = total / count
    std = (squares / count - mean ** 2).clamp_min(0).sqrt()
    if (std <= 0).any():
        raise UserError(f"{_what(config)}: a channel of the training data is constant (std 0); give normalise: "
                        "range with a value_range, or normalise: {mean: ..., std: ...}")
    return [float(v) for v in mean], [float(v) for v in std]


def open_custom(config: CustomConfig, shape, root, split, t_in, t_out):
    if split not in config.splits:
        raise UserError(f"{config.name} has splits {', '.join(config.splits)}, not '{split}'")
    length = int(t_in) + int(t_out)
    reader = open_reader(config, root, split)
    if tuple(reader.frame_shape) != tuple(shape):
        raise UserError(f"{_what(config)}: {split} frames are {tuple(reader.frame_shape)} but the dataset's frames are "
                        f"{tuple(shape)}; every split must have the same frame shape")
    scale, value_range, normalise = values(config, reader.dtype)
    mean: object = 0.0
    std: object = 1.0
    carried = None
    if normalise == "range":
        low, high = value_range
        mean, std = low, high - low
    elif normalise == "zscore":
        mean, std = train_statistics(config, root, scale)
        carried = (tuple(mean), tuple(std))
    elif isinstance(normalise, tuple):
        mean, std = normalise
    stride = config.stride.get(split) or length
    lengths = reader.sequence_lengths()
    sequences = split_sequences(config, reader.count, split)
    clips = [(sequence, start) for sequence in sequences
             for start in range(0, lengths[sequence] - length + 1, stride)]
    if not clips:
        longest = max((lengths[s] for s in sequences), default=0)
        raise UserError(f"{_what(config)}: the {split} split ({len(sequences)} sequences, the longest {longest} "
                        f"frames) holds no clip of {length} frames; choose a shorter task or add longer sequences")
    path, _ = source_path(config, root, split)
    dataset = CustomClips(reader, clips, t_in, t_out, scale, mean, std,
                          description=f"{path}: {len(sequences)} sequences, {len(clips)} clips (stride {stride})")
    if carried is not None:  # statistics of this root's training data: stbench de-normalises with them
        dataset.mean, dataset.std = carried
    return dataset


def check_custom(config: CustomConfig, shape, root) -> str:
    """What `stbench data check` prints: the sources, then clips and native values per split and canonical task."""
    lines = [f"{config.name}: declared by {config.file}"]
    for split in config.splits:
        path, _ = source_path(config, root, split)
        reader = open_reader(config, root, split)
        lines.append(f"  {split}: {len(split_sequences(config, reader.count, split))} sequences from {path} "
                     f"({reader.kind}, frames {tuple(reader.frame_shape)}, stored {reader.dtype})")
    seen = set()
    for text in config.canonical_tasks:
        task = parse_task(text)
        if task.length in seen:
            continue
        seen.add(task.length)
        for split in config.splits:
            dataset = open_custom(config, shape, root, split, task.t_in, task.t_out)
            native = torch.cat([dataset.native(i) for i in sorted({0, len(dataset) - 1})])
            low, high = float(native.min()), float(native.max())
            value_range = values(config, dataset.reader.dtype)[1]
            if value_range is not None and (low < value_range[0] - 1e-6 or high > value_range[1] + 1e-6):
                raise UserError(f"{_what(config)}: {split} values {low:.4g}..{high:.4g} lie outside value_range "
                                f"{list(value_range)}; fix value_range or scale in the YAML file")
            if not np.isfinite([low, high]).all():
                raise UserError(f"{_what(config)}: the {split} data holds NaN or infinite values")
            lines.append(f"  {split}: {len(dataset)} clips of {task.length} frames, native values "
                         f"{low:.4g}..{high:.4g} (first and last clip)")
    return "\n".join(lines)


def build_spec(config: CustomConfig, root) -> DatasetSpec:
    """The DatasetSpec; the frame shape (and the clip length of an array) are read from the training source."""
    reader = open_reader(config, root, "train")
    shape = tuple(int(n) for n in reader.frame_shape)
    scale, value_range, normalise = values(config, reader.dtype)
    lengths = [reader.length] if reader.kind == "array" else []
    max_length = config.max_length or (max(lengths) if lengths else UNBOUNDED_MAX_LENGTH)
    mean: object = 0.0
    std: object = 1.0
    if normalise == "range":
        mean, std = value_range[0], value_range[1] - value_range[0]
    elif isinstance(normalise, tuple):
        mean, std = normalise
        mean = mean[0] if len(mean) == 1 else tuple(mean)
        std = std[0] if len(std) == 1 else tuple(std)
    return DatasetSpec(
        name=config.name,
        shape=shape,
        open=partial(open_custom, config, shape),
        max_length=max_length,
        layout=layout_text(config),
        canonical_tasks=tuple(config.canonical_tasks),
        value_range=value_range,
        mean=mean,
        std=std,
        default_metrics=tuple(config.metrics) if config.metrics else (
            ("mse", "mae", "ssim", "psnr") if value_range is not None else ("mse", "mae", "rmse")),
        hparams_like=config.hparams_like,
        check=partial(check_custom, config, shape),
        splits=tuple(config.splits),
        image_origin=config.image_origin,
        description=config.description or f"custom dataset declared by {config.file}",
    )


def layout_text(config: CustomConfig) -> str:
    sources = "; ".join(f"{split if split != '*' else 'all splits'}: {source.path}"
                        + (f" [{source.key}]" if source.key else "") for split, source in config.files.items())
    return (f"custom dataset '{config.name}', declared by {config.file} ({sources}; relative paths start at the data "
            "root). Arrays are [N, T, C, H, W] (or NTHWC with layout: NTHWC); a folder holds one video file or one "
            "sub-folder of numbered images per sequence.")
