"""Reading Kinetics-400 videos into clips as OpenSTL's KineticsDataset samples them (PyAV, numpy, torch)."""
import csv
import os
from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch

from stbench import Clips, UserError
from stbench_data_common import (check_length, decode_frames, describe_split, frame_count, require_dir, require_file,
                                 resize_like_opencv, stack_frames, tasks_by_length)

from . import FOLDER, HINT, MIN_BYTES, SAMPLE_RATE, SIZE, SPEC, SPLITS

COLUMNS = ("youtube_id", "time_start", "time_end", "split")


def listed_videos(root, split: str) -> Tuple[Path, List[Path], int]:
    """The split's video folder, the listed videos present (CSV order) and how many the CSV lists.

    The folder is the CSV's split column (OpenSTL reads it from the first row); a video is
    ``<youtube_id>_<time_start:06d>_<time_end:06d>.mp4``. Missing files and files under 1 KB are left out (OpenSTL
    replaces them by a random other video each time they are drawn).
    """
    if split not in SPLITS:
        raise UserError(f"kinetics has splits {', '.join(SPLITS)}, not '{split}'")
    base = require_dir(Path(os.path.abspath(root)) / FOLDER, "Kinetics-400 videos and annotations", HINT)
    path = require_file(base / "annotations" / f"{split}.csv", f"the Kinetics-400 {split} list", HINT)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"cannot read {path} ({error}); replace it ({HINT})") from None
    header = [name.strip() for name in rows[0]] if rows else []
    if not set(COLUMNS) <= set(header):
        raise UserError(f"{path} must start with the header label,youtube_id,time_start,time_end,split; found "
                        f"{','.join(header) or 'nothing'}")
    where = [header.index(name) for name in COLUMNS]
    names, mode = [], None
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        try:
            youtube_id, start, end, mode_here = (row[i].strip() for i in where)
            names.append(f"{youtube_id}_{int(float(start)):06d}_{int(float(end)):06d}.mp4")
        except (IndexError, ValueError):
            raise UserError(f"{path}:{number}: expected label,youtube_id,time_start,time_end,split, got "
                            f"{','.join(row)!r}; replace the file") from None
        mode = mode or mode_here
    if not names:
        raise UserError(f"{path} lists no video; replace it ({HINT})")
    folder = base / mode
    if not folder.is_dir() and (base / split).is_dir():
        folder = base / split  # a CSV whose split column says e.g. 'validate' beside a val/ folder
    folder = require_dir(folder, f"the Kinetics-400 {split} videos", HINT)
    present = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(".mp4"):
                present[entry.name] = entry
    videos = [folder / name for name in names if name in present and present[name].stat().st_size >= MIN_BYTES]
    return folder, videos, len(names)


def evaluation_indices(frames: int, length: int) -> List[int]:
    """OpenSTL's test sampling: frames 0, 2, 4, ... of the video, the last repeated until the clip is full."""
    indices = list(range(0, frames, SAMPLE_RATE))
    indices += [indices[-1]] * (length - len(indices))
    return indices[:length]


def training_indices(frames: int, length: int, generator=None) -> List[int]:
    """OpenSTL's training (and val) sampling, num_segment 1: ``length`` points spread by numpy's linspace over a
    random window of ``2 x length`` frames, truncated to integers; over the whole video when it is not longer."""
    window = length * SAMPLE_RATE
    if frames <= window:
        index = np.linspace(0, frames, num=frames // SAMPLE_RATE)
        index = np.concatenate((index, np.ones(length - frames // SAMPLE_RATE) * frames))
        index = np.clip(index, 0, frames - 1).astype(np.int64)
    else:
        end = int(torch.randint(window, frames, (), generator=generator))  # np.random.randint(window, frames)
        index = np.clip(np.linspace(end - window, end, num=length), end - window, end - 1).astype(np.int64)
    return index.tolist()


def resized_size(height: int, width: int, size: int = SIZE) -> Tuple[int, int]:
    """OpenSTL's ``Resize(size)``: the shorter side to ``size``, the other ``int(size * long / short)``; frames whose
    shorter side is already ``size`` keep their size."""
    if (width <= height and width == size) or (height <= width and height == size):
        return height, width
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


def crop_offsets(height: int, width: int, size: int = SIZE) -> Tuple[int, int]:
    """OpenSTL's ``CenterCrop``: ``int(round((side - size) / 2))``, Python's round (halves to even)."""
    if height < size or width < size:
        raise UserError(f"frames of {height}x{width} are smaller than the {size}x{size} crop")
    return int(round((height - size) / 2.0)), int(round((width - size) / 2.0))


def resize_and_crop(frames: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """uint8-valued ``[T, C, H, W]`` frames resized (OpenCV INTER_LINEAR, bit for bit) and centre-cropped as OpenSTL;
    only the kept window of the resized frames is computed."""
    height, width = resized_size(*frames.shape[-2:], size)
    top, left = crop_offsets(height, width, size)
    return resize_like_opencv(frames, (height, width), window=(top, left, size, size))


class KineticsClips(Clips):
    """One clip per video present; the frame count is read from the container when the clip is drawn."""

    def __init__(self, videos, random_window: bool, t_in: int, t_out: int, description: str = ""):
        self.videos, self.random_window = [str(path) for path in videos], random_window
        self.t_in, self.t_out, self.description = int(t_in), int(t_out), description

    def __len__(self):
        return len(self.videos)

    def indices(self, index: int) -> List[int]:
        path, length = self.videos[index], self.t_in + self.t_out
        frames = frame_count(path)
        if frames < 1:
            raise UserError(f"the video {path} holds no frame; replace it or delete it (missing videos are skipped)")
        return training_indices(frames, length) if self.random_window else evaluation_indices(frames, length)

    def read(self, index: int, indices: List[int]) -> torch.Tensor:
        """The frames at ``indices``, RGB, shorter side 256, centre 256x256, in [0, 1] (not yet normalised)."""
        path = self.videos[index]
        first, last = min(indices), max(indices)
        decoded = decode_frames(path, first, last - first + 1, "RGB")
        frames = stack_frames([decoded[i - first] for i in indices], path)
        return resize_and_crop(frames).div_(255.0)

    def __getitem__(self, index):
        clip = SPEC.normalize(self.read(index, self.indices(index)))
        return clip[: self.t_in], clip[self.t_in:]


def open_kinetics(root, split, t_in, t_out):
    length = check_length(SPEC, t_in, t_out)
    folder, videos, listed = listed_videos(root, split)
    if not videos:
        raise UserError(f"none of the {listed} videos {split}.csv lists is under {folder}; {HINT}")
    random_window = split != "test"  # OpenSTL samples val clips as training clips (its mode comes from the CSV)
    how = (f"{length} points over a random window of {length * SAMPLE_RATE} frames" if random_window
           else f"frames 0, {SAMPLE_RATE}, ... {SAMPLE_RATE * (length - 1)}")
    return KineticsClips(videos, random_window, t_in, t_out,
                         description=f"{split}.csv: {len(videos)} of {listed} videos present; one clip each, {how}")


def check_videos(root) -> str:
    """How many listed videos each split has on disk (no decoding)."""
    lines = []
    for split in SPLITS:
        folder, videos, listed = listed_videos(root, split)
        lines.append(f"{split}: {len(videos)} of the {listed} videos in {split}.csv are in {folder.name}/")
    return "; ".join(lines)


def check_val(root) -> str:
    """The validation split at every canonical clip length (the report covers train and test)."""
    return "\n  ".join(describe_split(SPEC, root, "val", task) for task in tasks_by_length(SPEC).values())
