"""stbench dataset plugin: Cityscapes sequences as PredBench reads them (MCVD's 128x128 HDF5 shards)."""
from functools import partial
from pathlib import Path

import numpy as np
import torch

from stbench import UserError, hookimpl
from stbench_data_common import (LazyH5, VideoClips, check_length, fetch_hint, non_empty, open_h5, read_h5, require_dir,
                                 resize, resolve_split, to_unit, video_spec)

FOLDER = "cityscapes/Cityscapes128_h5"
SIZE = 128
TRAIN_STRIDE = 5  # PredBench: training clips every 5 frames; test: one clip per sequence, from its first frame
MAX_LENGTH = 30  # a Cityscapes sequence snippet holds 30 frames

SOURCE = ("https://www.cityscapes-dataset.com (leftImg8bit_sequence_trainvaltest.zip), converted by MCVD's "
          "datasets/cityscapes_convert.py (voletiv/mcvd-pytorch) --image_size 128")
LAYOUT = f"""Cityscapes sequences ({FOLDER}/ under the data root), the HDF5 shards PredBench reads:
  {FOLDER}/train/shard_0001.hdf5, {FOLDER}/test/shard_0001.hdf5   (every *.hdf5 / *.h5 there is read)
  inside a shard: len/<k> = frames of sequence k; <k>/<i> = frame i, uint8 [128, 128, 3] RGB (centre-cropped
  square, Lanczos-resized by the converter)
Source: {SOURCE}. Expected: 2,975 train / 1,525 test sequences of 30 frames; PredBench's counts (UniSTD
Table 1) are 8,925 train / 1,525 test clips.
Clips: training windows start every 5 frames (0, 5, ... while the clip fits); each test sequence gives one clip
from its first frame. Frames resized to 128x128 (bilinear) when stored otherwise, /255 -> [0, 1]."""
HINT = f"expected {FOLDER}/{{train,test}}/shard_0001.hdf5; " + fetch_hint(SOURCE, "cityscapes-2-5")


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


SPEC = video_spec(
    name="cityscapes",
    shape=(3, SIZE, SIZE),
    open=open_cityscapes,
    max_length=MAX_LENGTH,
    layout=LAYOUT,
    canonical_tasks=("cityscapes-2-5",),
    description="Cityscapes street-scene sequences, RGB 128x128 at 17 fps",
)


@hookimpl
def stbench_register_datasets(register):
    register(SPEC)
