"""Reading KITTI raw drives into clips (torch, PIL)."""
import os
from functools import partial
from pathlib import Path

from stbench import UserError
from stbench_data_common import (VideoClips, center_crop, check_length, decode_image, non_empty, require_dir, resize,
                                 resolve_split, stack_frames, to_unit)

from .kitti import CAMERA, COLOUR_CAMERA, FOLDER, FRAME, HEIGHT, HINT, RESIZED, SPEC, STRIDE, WIDTH


def index_drives(root, split):
    """[(folder, frame names in order)] of every folder under kitti/<split> that holds numbered PNG frames."""
    base = require_dir(Path(root) / FOLDER / split, f"KITTI {split} drives", HINT)
    drives = []
    for folder, _, names in sorted(os.walk(base)):
        cameras = [part for part in Path(folder).relative_to(base).parts if CAMERA.match(part)]
        if any(camera != COLOUR_CAMERA for camera in cameras):
            continue
        numbered = sorted((int(match[1]), name) for name in names if (match := FRAME.match(name)))
        if numbered:
            drives.append((folder, [name for _, name in numbered]))
    if not drives:
        raise UserError(f"no folders of numbered .png frames under {Path(os.path.abspath(base))}; {HINT}")
    return drives


def read_clip(drives, drive, start, length):
    folder, names = drives[drive]
    frames = [decode_image(Path(folder, name), "RGB") for name in names[start:start + length]]
    frames = resize(stack_frames(frames, folder), RESIZED)
    return to_unit(center_crop(frames, (HEIGHT, WIDTH)))


def open_kitti(root, split, t_in, t_out):
    split = resolve_split("kitti", split)
    length = check_length(SPEC, t_in, t_out)
    drives = index_drives(root, split)
    clips = [(drive, start) for drive, (_, names) in enumerate(drives)
             for start in range(0, len(names) - length, STRIDE[split])]
    dataset = VideoClips(clips, partial(read_clip, drives), t_in, t_out, SPEC,
                         description=f"KITTI {split}/, {len(drives)} drives, stride {STRIDE[split]}")
    return non_empty(dataset, "kitti", split, Path(root) / FOLDER / split)
