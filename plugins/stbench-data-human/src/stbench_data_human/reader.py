"""Reading Human3.6M frames into clips (torch, PIL)."""
from functools import partial
from pathlib import Path

from stbench_data_common import (VideoClips, check_length, decode_image, frames_present, longest_task_length, non_empty,
                                 read_clip_list, require_dir, resize, resolve_split, stack_frames, to_unit)

from . import FOLDER, HINT, SIZE, SPEC, STEP


def frame_name(prefix, number):
    """OpenSTL's frame file name: the list prefix plus the frame number padded to 6 digits."""
    return f"{prefix}{number:06d}.jpg"


def list_clips(root, split):
    base = require_dir(Path(root) / FOLDER, "Human3.6M frames and clip lists", HINT)
    require_dir(base / "images", "Human3.6M frames", HINT)
    return base, read_clip_list(base / f"{split}.txt", HINT)


def read_clip(base, prefix, start, length):
    """``length`` frames from ``start`` at step 5: RGB, 256x256, [0, 1]."""
    paths = [base / frame_name(prefix, start + k * STEP) for k in range(length)]
    frames = stack_frames([decode_image(path, "RGB") for path in paths], str(paths[0]))
    return to_unit(resize(frames, (SIZE, SIZE), mode="bicubic"))


def open_human(root, split, t_in, t_out):
    split = resolve_split("human", split)
    check_length(SPEC, t_in, t_out)
    base, clips = list_clips(root, split)
    dataset = VideoClips(clips, partial(read_clip, base), t_in, t_out, SPEC,
                         description=f"{split}.txt, frame step {STEP}")
    return non_empty(dataset, "human", split, base)


def check_frames(root):
    """Every frame the lists name for the canonical task exists (one folder listing, no decoding)."""
    length = longest_task_length(SPEC)
    lines = []
    for split in ("train", "test"):
        base, clips = list_clips(root, split)
        frames = ([base / frame_name(prefix, start + k * STEP)] for prefix, start in clips for k in range(length))
        lines.append(frames_present("human", split, frames, "re-extract the images"))
    return "; ".join(lines)
