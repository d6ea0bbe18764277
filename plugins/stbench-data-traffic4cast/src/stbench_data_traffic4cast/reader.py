"""Reading Traffic4Cast 2021 day files into clips (numpy, torch, h5py)."""
import json
import os
from pathlib import Path

import numpy as np
import torch
from stbench import Clips, UserError, require

from . import CHANNELS, CROP, FOLDER, HINT, STRIDE, TEST_EVERY


def _h5py():
    return require("h5py", "Traffic4Cast", "h5py")


def day_files(root, split):
    """The day files of one split: from annotations/<split>.json when present, else the sorted-day rule."""
    folder = Path(os.path.abspath(root)) / FOLDER
    if not folder.is_dir():
        raise UserError(f"Traffic4Cast: {folder} not found; {HINT}")
    notes = folder / "annotations"
    annotation = notes / f"{'test' if split == 'val' and not (notes / 'val.json').exists() else split}.json"
    if annotation.exists():
        try:
            names = json.loads(annotation.read_text())
        except (OSError, ValueError) as error:
            raise UserError(f"Traffic4Cast: cannot read {annotation} ({error}); expected a JSON list of day files") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise UserError(f"Traffic4Cast: {annotation} must hold a JSON list of day-file paths")
        files = [folder / name for name in names]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise UserError(f"Traffic4Cast: {annotation} lists {len(missing)} missing day file(s), first {missing[0]}")
        return files
    every = sorted(folder.glob("*/training/*.h5"))
    if not every:
        raise UserError(f"Traffic4Cast: no day file <CITY>/training/*.h5 under {folder}; {HINT}")
    is_test = [i % TEST_EVERY == TEST_EVERY - 1 for i in range(len(every))]
    wanted = split in ("test", "val")
    return [f for f, test in zip(every, is_test) if test == wanted]


def frame_count(path):
    """Frames in one day file, after checking its 'array' dataset."""
    try:
        with _h5py().File(path, "r") as handle:
            if "array" not in handle:
                raise UserError(f"Traffic4Cast: {path} has no dataset 'array'")
            shape = tuple(handle["array"].shape)
    except UserError:
        raise
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"Traffic4Cast: cannot read {path} ({error}); the file looks damaged, download it again") from None
    if len(shape) != 4 or shape[3] != CHANNELS or shape[1] < CROP[0] or shape[2] < CROP[1]:
        raise UserError(f"Traffic4Cast: {path}: 'array' has shape {shape}; expected (288, 495, 436, {CHANNELS}) "
                        f"(at least {CROP[0]}x{CROP[1]} pixels)")
    return shape


def clip_offsets(frames, length):
    return list(range(0, frames - length, STRIDE))  # PredBench: range(0, 288 - total_frames, stride)


class Traffic4CastClips(Clips):
    """Clips (file, offset) read lazily: only the needed frames of the centre crop leave the disk."""

    def __init__(self, entries, t_in, t_out, description=""):
        self.entries, self.t_in, self.t_out = entries, t_in, t_out  # entries: (path, offset, height, width)
        self.description = description

    def __len__(self):
        return len(self.entries)

    def __getitem__(self, index):
        path, offset, height, width = self.entries[index]
        top, left = (height - CROP[0]) // 2, (width - CROP[1]) // 2
        try:
            with _h5py().File(path, "r") as handle:
                clip = handle["array"][offset:offset + self.t_in + self.t_out, top:top + CROP[0], left:left + CROP[1]]
        except (OSError, ValueError, KeyError) as error:
            raise UserError(f"Traffic4Cast: cannot read frames {offset}.. of {path} ({error}); the file looks damaged") from None
        clip = torch.from_numpy(clip.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
        return clip[: self.t_in], clip[self.t_in:]


def open_traffic4cast(root, split, t_in, t_out):
    if split not in ("train", "val", "test"):
        raise UserError(f"traffic4cast has splits train, val and test, not '{split}'")
    entries, files = [], day_files(root, split)
    if not files:
        raise UserError(f"Traffic4Cast: the {split} split holds no day file under "
                        f"{Path(os.path.abspath(root)) / FOLDER}")
    for path in files:
        frames, height, width, _ = frame_count(path)
        entries += [(str(path), offset, height, width) for offset in clip_offsets(frames, t_in + t_out)]
    return Traffic4CastClips(entries, t_in, t_out, description=f"{len(files)} day files, {len(entries)} clips "
                                                               f"(stride {STRIDE}, centre crop {CROP[0]}x{CROP[1]})")


def check_traffic4cast(root):
    lines = []
    for split in ("train", "test"):
        files = day_files(root, split)
        shapes = [frame_count(path) for path in files]
        with _h5py().File(files[0], "r") as handle:
            first = handle["array"][0]
        clips = sum(len(clip_offsets(shape[0], 12)) for shape in shapes)
        lines.append(f"{split}: {len(files)} day files, {clips} clips of 9+3 frames, first file {shapes[0]}, "
                     f"values {int(first.min())}..{int(first.max())} in its first frame")
    return "\n".join(lines)
