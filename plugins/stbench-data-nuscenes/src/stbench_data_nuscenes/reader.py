"""Reading nuScenes front-camera frames into clips with PredBench's per-log lists (torch, PIL)."""
import os
from functools import partial
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from stbench import UserError
from stbench_data_common import (VideoClips, center_crop, check_length, decode_image, describe_split, non_empty,
                                 read_json, require_dir, resize_like_opencv, stack_frames, tasks_by_length, to_unit)

from . import ANNOTATIONS, FOLDER, HEIGHT, HINT, RESIZED, SPEC, SPLIT_HINT, SPLITS, STRIDE, WIDTH


def logs(root, split: str) -> Tuple[Path, List[Tuple[str, List[str]]]]:
    """The frames folder and ``[(log, [frame paths under it, in time order])]`` of one split, in the list's order."""
    if split not in SPLITS:
        raise UserError(f"nuscenes has splits {', '.join(SPLITS)}, not '{split}'")
    root = Path(os.path.abspath(root))
    path = root / ANNOTATIONS / f"nuscenes_{split}.json"
    listed = read_json(path, f"PredBench's nuScenes {split} list", SPLIT_HINT, kind=dict)
    entries = []
    for log, frames in listed.items():
        if not isinstance(frames, list) or not all(isinstance(frame, str) and frame for frame in frames):
            raise UserError(f"{path}: '{log}' must map to a list of frame paths; replace it ({SPLIT_HINT})")
        entries.append((log, frames))
    if not entries:
        raise UserError(f"{path} lists no log; replace it ({SPLIT_HINT})")
    return require_dir(root / FOLDER, "nuScenes camera frames", HINT), entries


def clip_starts(frames: int, length: int) -> range:
    return range(0, frames - length, STRIDE)  # PredBench: range(0, len(images) - total_frames, stride)


def read_clip(base: Path, lists: Sequence[Sequence[str]], crop: bool, log: int, start: int, length: int):
    """Frames ``start .. start + length - 1`` of one log, RGB in [0, 1]: resized to 128x228 and centre-cropped to
    128x160 (``crop``: PredBench's training pipeline), else resized to 128x160 (its val and test pipelines)."""
    paths = [base / name for name in lists[log][start:start + length]]
    frames = stack_frames([decode_image(path, "RGB") for path in paths], str(paths[0]))
    if crop:
        return to_unit(center_crop(resize_like_opencv(frames, RESIZED), (HEIGHT, WIDTH)))
    return to_unit(resize_like_opencv(frames, (HEIGHT, WIDTH)))


def open_nuscenes(root, split, t_in, t_out):
    length = check_length(SPEC, t_in, t_out)
    base, entries = logs(root, split)
    clips = [(log, start) for log, (_, frames) in enumerate(entries) for start in clip_starts(len(frames), length)]
    crop = split == "train"
    how = (f"resized to {RESIZED[0]}x{RESIZED[1]}, centre {HEIGHT}x{WIDTH}" if crop
           else f"resized to {HEIGHT}x{WIDTH} (no crop, as PredBench's {split} pipeline)")
    dataset = VideoClips(clips, partial(read_clip, base, tuple(frames for _, frames in entries), crop), t_in, t_out,
                         SPEC, description=f"nuscenes_{split}.json: {len(entries)} logs, {len(clips)} clips starting "
                                           f"every {STRIDE} frames; {how}")
    return non_empty(dataset, "nuscenes", split, base)


def check_frames(root) -> str:
    """Every frame the three lists name exists (each folder listed once, no decoding)."""
    listings: Dict[Path, set] = {}
    lines = []
    for split in SPLITS:
        base, entries = logs(root, split)
        total, missing, first = 0, 0, None
        for _, frames in entries:
            for name in frames:
                path = base / name
                if path.parent not in listings:
                    listings[path.parent] = set(os.listdir(path.parent)) if path.parent.is_dir() else set()
                total += 1
                if path.name not in listings[path.parent]:
                    missing += 1
                    first = first or path
        if missing:
            raise UserError(f"nuscenes {split}: {missing} of the {total} frames listed in nuscenes_{split}.json are "
                            f"missing, e.g. {first}; {HINT}")
        lines.append(f"{split}: all {total} frames of the {len(entries)} logs in nuscenes_{split}.json exist")
    return "; ".join(lines)


def check_val(root) -> str:
    """The validation split at every canonical clip length (the report covers train and test)."""
    return "\n  ".join(describe_split(SPEC, root, "val", task) for task in tasks_by_length(SPEC).values())
