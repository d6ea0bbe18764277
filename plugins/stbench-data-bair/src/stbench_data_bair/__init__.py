"""stbench dataset plugin: BAIR robot pushing as PredBench stores it (one .npy array of videos per split)."""
from functools import partial
from pathlib import Path

import numpy as np
import torch

from stbench import UserError, hookimpl
from stbench_data_common import (LazyNpy, VideoClips, check_length, fetch_hint, load_npy, non_empty, require_dir,
                                 require_file, resize, resolve_split, to_unit, video_spec)

FOLDER = "bair"
SIZE = 64
MAX_LENGTH = 30  # BAIR videos hold 30 frames

SOURCE = ("http://rail.eecs.berkeley.edu/datasets/bair_robot_pushing_dataset_v0.tar (softmotion30_44k TFRecords, "
          "the image_aux1 stream, converted to arrays)")
LAYOUT = f"""BAIR robot pushing ({FOLDER}/ under the data root), as PredBench (OpenEarthLab/PredBench) stores it:
  {FOLDER}/train.npy, {FOLDER}/test.npy     videos [N, 30, 64, 64, 3] uint8 RGB (N, T, H, W, C)
Source: {SOURCE}. Expected: 38,937 train / 256 test videos (UniSTD Table 1; PredBench keeps the rest of the
43,264 training videos as val.npy, which stbench does not need).
Clips: one per video, as PredBench's SampleFrames: at a random offset for training, at the centre
(offset (30 - clip length + 1) // 2) for testing. Frames resized to 64x64 (bilinear) when stored otherwise,
/255 -> [0, 1]."""
HINT = (f"expected {FOLDER}/train.npy and {FOLDER}/test.npy of shape (N, T, 64, 64, 3); "
        + fetch_hint(SOURCE, "bair-2-10"))


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


SPEC = video_spec(
    name="bair",
    shape=(3, SIZE, SIZE),
    open=open_bair,
    max_length=MAX_LENGTH,
    layout=LAYOUT,
    canonical_tasks=("bair-2-10",),
    description="BAIR robot pushing: a robot arm moving objects, RGB 64x64",
)


@hookimpl
def stbench_register_datasets(register):
    register(SPEC)
