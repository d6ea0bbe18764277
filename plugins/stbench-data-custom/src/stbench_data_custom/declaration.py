"""Declaring a custom dataset from its YAML file: the DatasetSpec, with the frame shape read from the training source.

Registration runs this for every YAML file under the data root, so it reads only headers (numpy, PIL, a video's
first frame) and imports no torch; the clips (:mod:`stbench_data_custom.dataset`) load when the data is opened.
"""
import os
from functools import partial
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from stbench import DatasetSpec, UserError, lazy

from .config import CustomConfig
from .sources import open_source

UNBOUNDED_MAX_LENGTH = 100_000  # sequences of unknown length (folders): open() reports what does not fit

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
        open=partial(lazy("stbench_data_custom.dataset:open_custom"), config, shape),
        max_length=max_length,
        layout=layout_text(config),
        canonical_tasks=tuple(config.canonical_tasks),
        value_range=value_range,
        mean=mean,
        std=std,
        default_metrics=tuple(config.metrics) if config.metrics else (
            ("mse", "mae", "ssim", "psnr") if value_range is not None else ("mse", "mae", "rmse")),
        hparams_like=config.hparams_like,
        check=partial(lazy("stbench_data_custom.dataset:check_custom"), config, shape),
        splits=tuple(config.splits),
        # a declared val split is the validation set; otherwise 10% of the training clips are held out
        validation="val" if "val" in config.splits else 0.1,
        image_origin=config.image_origin,
        description=config.description or f"custom dataset declared by {config.file}",
    )


def layout_text(config: CustomConfig) -> str:
    sources = "; ".join(f"{split if split != '*' else 'all splits'}: {source.path}"
                        + (f" [{source.key}]" if source.key else "") for split, source in config.files.items())
    return (f"custom dataset '{config.name}', declared by {config.file} ({sources}; relative paths start at the data "
            "root). Arrays are [N, T, C, H, W] (or NTHWC with layout: NTHWC); a folder holds one video file or one "
            "sub-folder of numbered images per sequence.")
