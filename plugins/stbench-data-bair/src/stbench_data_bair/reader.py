"""Reading BAIR's arrays into clips (numpy, torch)."""
from functools import partial
from pathlib import Path

import numpy as np
import torch

from stbench import UserError
from stbench_data_common import (LazyNpy, VideoClips, check_length, load_npy, non_empty, require_dir, require_file,
                                 resize, resolve_split, to_unit)

from . import FOLDER, HINT, SIZE, SPEC


class BairClips(VideoClips):
    """One clip per video; training offsets are drawn afresh at every access (torch's seeded RNG)."""

    def __init__(self, videos, frames_per_video, random_offset, *args, **kwargs):
        super().__init__(range(videos), *args, **kwargs)
        self.frames_per_video, self.random_offset = frames_per_video, random_offset

    def clip(self, index):
        choices = self.frames_per_video - (self.t_in + self.t_out) + 1
        offset = int(torch.randint(choices, ())) if self.random_offset else choices // 2
        return index, offset


def read_clip(videos, video, start, length):
    frames = torch.from_numpy(np.array(videos.array[video, start:start + length])).permute(0, 3, 1, 2).float()
    return to_unit(resize(frames, (SIZE, SIZE)))


def open_bair(root, split, t_in, t_out):
    split = resolve_split("bair", split)
    length = check_length(SPEC, t_in, t_out)
    path = require_file(require_dir(Path(root) / FOLDER, "BAIR arrays", HINT) / f"{split}.npy", f"BAIR {split} videos",
                        HINT)
    array = load_npy(path)
    if array.ndim != 5 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise UserError(f"{path} holds {array.dtype} of shape {tuple(array.shape)}; expected uint8 videos "
                        "(N, T, H, W, 3)")
    if array.shape[1] < length:
        raise UserError(f"{path} holds videos of {array.shape[1]} frames; the task needs {length}")
    dataset = BairClips(array.shape[0], array.shape[1], split == "train", partial(read_clip, LazyNpy(path)), t_in,
                        t_out, SPEC, description=f"{path.name}: {array.shape[0]} videos of {array.shape[1]} frames")
    return non_empty(dataset, "bair", split, path)
