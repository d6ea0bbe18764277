"""Reading BridgeData v1 trajectories (JPEG folders) into clips with PredBench's split lists (torch, PIL)."""
import os
from functools import partial
from pathlib import Path
from typing import List, Tuple

from stbench import UserError
from stbench_data_common import (VideoClips, check_length, decode_image, describe_split, non_empty, read_json,
                                 require_dir, resize_like_opencv, sample_frames_start, stack_frames, tasks_by_length,
                                 to_unit)

from . import ANNOTATIONS, FOLDER, HEIGHT, HINT, SPEC, SPLIT_HINT, SPLITS, WIDTH


def frame_name(index: int) -> str:
    return f"im_{index}.jpg"  # PredBench: filename_prefix 'im_', filename_tmpl '{}.jpg', frames from 0


def trajectories(root, split: str) -> Tuple[Path, List[Tuple[str, int]]]:
    """The frames folder and ``[(trajectory folder, frame count)]`` of one split, in the list's order."""
    if split not in SPLITS:
        raise UserError(f"bridgedata has splits {', '.join(SPLITS)}, not '{split}'")
    root = Path(os.path.abspath(root))
    path = root / ANNOTATIONS / f"bridgedata_{split}.json"
    listed = read_json(path, f"PredBench's BridgeData {split} list", SPLIT_HINT, kind=dict)
    entries = []
    for folder, count in listed.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise UserError(f"{path}: '{folder}' maps to {count!r}; expected its frame count (a positive integer)")
        entries.append((folder, count))
    if not entries:
        raise UserError(f"{path} lists no trajectory; replace it ({SPLIT_HINT})")
    return require_dir(root / FOLDER, "BridgeData v1 frames", HINT), entries


class BridgeDataClips(VideoClips):
    """One clip per trajectory long enough; training starts are drawn afresh at every access (torch's seeded RNG)."""

    def __init__(self, entries, random_start, *args, **kwargs):
        super().__init__(entries, *args, **kwargs)
        self.random_start = random_start

    def clip(self, index):
        folder, count = self.clips[index]
        return folder, sample_frames_start(count, self.t_in + self.t_out, self.random_start)


def read_clip(base: Path, folder: str, start: int, length: int):
    """Frames ``start .. start + length - 1`` of one trajectory: RGB, resized to 120x160 as OpenCV does, [0, 1]."""
    paths = [base / folder / frame_name(start + k) for k in range(length)]
    frames = stack_frames([decode_image(path, "RGB") for path in paths], str(paths[0].parent))
    return to_unit(resize_like_opencv(frames, (HEIGHT, WIDTH)))


def open_bridgedata(root, split, t_in, t_out):
    length = check_length(SPEC, t_in, t_out)
    base, entries = trajectories(root, split)
    usable = [(folder, count) for folder, count in entries if count >= length]  # PredBench drops shorter ones
    dataset = BridgeDataClips(usable, split == "train", partial(read_clip, base),
                              t_in, t_out, SPEC,
                              description=f"bridgedata_{split}.json: {len(usable)} of {len(entries)} trajectories "
                                          f"hold {length} frames; one clip each, "
                                          f"{'random' if split == 'train' else 'centre'} start")
    return non_empty(dataset, "bridgedata", split, base)


def check_frames(root) -> str:
    """Every frame the three lists name exists (one folder listing per trajectory, no decoding)."""
    lines = []
    for split in SPLITS:
        base, entries = trajectories(root, split)
        missing, first = 0, None
        for folder, count in entries:
            where = base / folder
            present = set(os.listdir(where)) if where.is_dir() else set()
            lacking = [k for k in range(count) if frame_name(k) not in present]
            if lacking:
                missing += 1
                first = first or where / frame_name(lacking[0])
        if missing:
            raise UserError(f"bridgedata {split}: {missing} of the {len(entries)} trajectories listed in "
                            f"bridgedata_{split}.json lack frames, e.g. {first}; {HINT}")
        lines.append(f"{split}: all frames of the {len(entries)} trajectories in bridgedata_{split}.json exist")
    return "; ".join(lines)


def check_val(root) -> str:
    """The validation split at every canonical clip length (the report covers train and test)."""
    return "\n  ".join(describe_split(SPEC, root, "val", task) for task in tasks_by_length(SPEC).values())
