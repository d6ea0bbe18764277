"""Reading the Cityscapes HDF5 shards into clips (numpy, torch, h5py)."""
from functools import partial
from pathlib import Path

import numpy as np
import torch

from stbench import UserError
from stbench_data_common import (LazyH5, VideoClips, check_length, non_empty, open_h5, read_h5, require_dir, resize,
                                 resolve_split, to_unit)

from . import FOLDER, HINT, SIZE, SPEC, TRAIN_STRIDE


def shard_paths(root, split):
    folder = require_dir(Path(root) / FOLDER / split, f"Cityscapes {split} shards", HINT)
    paths = sorted(list(folder.glob("*.hdf5")) + list(folder.glob("*.h5")))
    if not paths:
        raise UserError(f"no .hdf5 shards in {folder}; {HINT}")
    return paths


def index_sequences(root, split):
    """[(shard path, sequence key, frame count)] in shard and key order."""
    sequences = []
    for path in shard_paths(root, split):
        with open_h5(path, HINT) as handle:
            if "len" not in handle:
                raise UserError(f"{path} has no 'len' group (not an MCVD / PredBench video shard); {HINT}")
            for key in sorted(handle["len"].keys(), key=lambda k: int(k) if k.isdigit() else k):
                if key not in handle:
                    raise UserError(f"{path}: len/{key} is listed but sequence group '{key}' is missing (corrupt "
                                    "shard); convert it again")
                count = int(read_h5(handle["len"][key], (), f"{path} len/{key}"))
                sequences.append((str(path), key, count))
    return sequences


def read_clip(files, sequences, sequence, start, length):
    path, key, _ = sequences[sequence]
    group = files[path][key]
    frames = []
    for index in range(start, start + length):
        if str(index) not in group:
            raise UserError(f"{path}: frame {key}/{index} is missing (corrupt shard); convert it again")
        frame = np.asarray(read_h5(group[str(index)], (), f"{path} frame {key}/{index}"))
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise UserError(f"{path}: frame {key}/{index} is {frame.dtype} of shape {frame.shape}; expected uint8 "
                            "[H, W, 3]")
        frames.append(frame)
    if len({frame.shape for frame in frames}) != 1:
        raise UserError(f"{path}: the frames of sequence {key} differ in size")
    tensor = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()
    return to_unit(resize(tensor, (SIZE, SIZE)))


def open_cityscapes(root, split, t_in, t_out):
    split = resolve_split("cityscapes", split)
    length = check_length(SPEC, t_in, t_out)
    sequences = index_sequences(root, split)
    if split == "train":
        clips = [(n, start) for n, (_, _, count) in enumerate(sequences)
                 for start in range(0, count - length + 1, TRAIN_STRIDE)]
    else:
        clips = [(n, 0) for n, (_, _, count) in enumerate(sequences) if count >= length]
    dataset = VideoClips(clips, partial(read_clip, LazyH5(HINT), sequences), t_in, t_out, SPEC,
                         description=f"{len(sequences)} sequences in {FOLDER}/{split}")
    return non_empty(dataset, "cityscapes", split, Path(root) / FOLDER / split)
