"""A custom dataset's clips: splits, clip windows, z-score statistics and the data check (torch).

Its DatasetSpec is declared by :mod:`stbench_data_custom.declaration`, which imports no torch.
"""
from typing import List, Tuple

import numpy as np
import torch

from stbench import Clips, UserError, parse_task

from .config import SPLITS, CustomConfig
from .declaration import _what, open_reader, source_path, values

STATISTICS_SEQUENCES = 64  # z-score statistics come from this many training sequences, evenly spaced


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
