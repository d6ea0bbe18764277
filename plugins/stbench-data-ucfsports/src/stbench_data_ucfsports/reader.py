"""Reading UCF Sports frames into clips (torch, PIL)."""
import re
from pathlib import Path, PurePosixPath

from stbench_data_common import (VideoClips, check_length, decode_image, frames_present, longest_task_length, non_empty,
                                 read_clip_list, require_dir, resize, resolve_split, stack_frames, to_unit)

from . import EXTENSIONS, FOLDER, HEIGHT, HINT, IMAGES, SPEC, WIDTH


def video_folder(images: Path, listed: str) -> Path:
    """The local folder of a listed video: the part after ``ucf_action_images/``, else the last two parts."""
    parts = [part for part in re.split(r"[\\/]+", listed.strip()) if part]
    relative = parts[parts.index(IMAGES) + 1:] if IMAGES in parts else parts[-2:]
    return images.joinpath(*PurePosixPath(*relative).parts) if relative else images


def frame_path(folder: Path, number: int) -> Path:
    for extension in EXTENSIONS:
        path = folder / f"{number}{extension}"
        if path.is_file():
            return path
    return folder / f"{number}{EXTENSIONS[0]}"  # missing: decode_image names it


def list_clips(root, split):
    base = require_dir(Path(root) / FOLDER, "UCF Sports frames and clip lists", HINT)
    images = require_dir(base / IMAGES, "UCF Sports frames", HINT)
    listed = read_clip_list(base / f"{split}.txt", HINT)
    return images, [(video_folder(images, folder), start) for folder, start in listed]


def read_clip(folder, start, length):
    """Frames ``start .. start + length - 1`` of one video: RGB, 480x720, [0, 1]."""
    frames = [decode_image(frame_path(folder, start + k), "RGB") for k in range(length)]
    return to_unit(resize(stack_frames(frames, str(folder)), (HEIGHT, WIDTH)))


def open_ucfsports(root, split, t_in, t_out):
    split = resolve_split("ucfsports", split)
    check_length(SPEC, t_in, t_out)
    images, clips = list_clips(root, split)
    dataset = VideoClips(clips, read_clip, t_in, t_out, SPEC, description=f"STRPM {split}.txt")
    return non_empty(dataset, "ucfsports", split, images)


def check_frames(root):
    """Every frame the lists name for the canonical task exists (one listing per video folder)."""
    length = longest_task_length(SPEC)
    lines = []
    for split in ("train", "test"):
        images, clips = list_clips(root, split)
        frames = ([folder / f"{start + k}{ext}" for ext in EXTENSIONS]
                  for folder, start in clips for k in range(length))
        lines.append(frames_present("ucfsports", split, frames, f"extract the videos into {images}"))
    return "; ".join(lines)
