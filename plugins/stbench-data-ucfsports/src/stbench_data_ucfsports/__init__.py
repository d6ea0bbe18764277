"""stbench dataset plugin: UCF Sports at full 720x480 resolution with the STRPM clip lists (ucfsports-4-1)."""
import re
from pathlib import Path, PurePosixPath

from stbench import hookimpl
from stbench_data_common import (VideoClips, check_length, decode_image, fetch_hint, frames_present,
                                 longest_task_length, non_empty, read_clip_list, require_dir, resize, resolve_split,
                                 stack_frames, to_unit, video_spec)

FOLDER = "ucfsports"
IMAGES = "ucf_action_images"
HEIGHT, WIDTH = 480, 720
MAX_LENGTH = 10  # STRPM's lists give windows of total_length = 10 frames
EXTENSIONS = (".png", ".jpg")

SOURCE = "https://www.crcv.ucf.edu/data/ucf_sports_actions.zip (split lists: ZhengChang467/STRPM datasets/ucfsports)"
LAYOUT = f"""UCF Sports ({FOLDER}/ under the data root), frames as STRPM extracts them:
  {FOLDER}/{IMAGES}/<Action>/<NNN>/<i>.png    frame i of a video, 720x480 RGB (e.g. Diving-Side/001/42.png)
  {FOLDER}/train.txt, {FOLDER}/test.txt        STRPM's lists, one clip a line: '<video folder>/,<first frame>'
Source: {SOURCE}. The lists' absolute paths (E:/datasets/.../{IMAGES}/Diving-Side/001/) are read from
'{IMAGES}/' on (or their last two parts), so they work unmodified. .jpg frames are accepted where .png are absent.
Splits: STRPM's random train / test clips of the 150 videos: 6,288 train / 752 test clips (USTEP Table I).
A clip is consecutive frames <first>, <first>+1, ...; RGB, resized to 480x720 (bilinear) when stored otherwise,
/255 -> [0, 1]. PredBench has no UCF Sports loader; this follows STRPM, whose lists USTEP's counts match."""
HINT = (f"expected {FOLDER}/{IMAGES}/<Action>/<NNN>/<i>.png with {FOLDER}/train.txt and test.txt; "
        + fetch_hint(SOURCE, "ucfsports-4-1"))


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


SPEC = video_spec(
    name="ucfsports",
    shape=(3, HEIGHT, WIDTH),
    open=open_ucfsports,
    max_length=MAX_LENGTH,
    layout=LAYOUT,
    canonical_tasks=("ucfsports-4-1",),
    extra_checks=[check_frames],
    description="UCF Sports: broadcast sports actions, RGB 480x720",
)


@hookimpl
def stbench_register_datasets(register):
    register(SPEC)
