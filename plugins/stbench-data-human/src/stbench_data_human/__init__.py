"""stbench dataset plugin: Human3.6M as OpenSTL prepares it (256x256 JPEG frames + clip lists), streamed from disk."""
from functools import partial
from pathlib import Path

from stbench import hookimpl
from stbench_data_common import (VideoClips, check_length, decode_image, fetch_hint, frames_present,
                                 longest_task_length, non_empty, read_clip_list, require_dir, resize, resolve_split,
                                 stack_frames, to_unit, video_spec)

FOLDER = "human"
SIZE = 256
STEP = 5  # every 5th camera frame (50 fps -> 10 fps)
# The STRPM / OpenSTL lists give windows of 70 camera frames (start, start + 70): 14 frames at step 5.
MAX_LENGTH = 14

SOURCE = ("http://vision.imar.ro/human3.6m (the visiondata.cis.upenn.edu/volumetric/h36m S*.tar image "
          "archives, as OpenSTL's tools/prepare_data/download_human3.6m.sh fetches them)")
LAYOUT = f"""Human3.6M ({FOLDER}/ under the data root), as OpenSTL prepares it:
  {FOLDER}/images/<subject>_<action>.<camera>_<NNNNNN>.jpg   every frame, resized to 256x256
  {FOLDER}/train.txt, {FOLDER}/test.txt                      one clip a line: '<prefix>,<start>[,<end>]', e.g.
                                                          'images/S1_Directions.54138969_,1276,1346'
Source: {SOURCE}; the lists come from STRPM (ZhengChang467/STRPM) via OpenSTL's tools/prepare_data/meta/human.
Splits: as the lists give them, windows drawn from every subject's videos (S1, S5-S9, S11 in both):
73,404 train / 8,582 test clips.
A clip is frames <start>, <start>+5, ... (step 5); RGB, resized to 256x256 (bicubic) when stored otherwise,
/255 -> [0, 1]. OpenSTL read the frames with OpenCV (BGR order) and augmented training clips with random
crops and rotations; stbench reads RGB and does not augment (MSE, MAE, SSIM and PSNR ignore channel order)."""
HINT = (f"expected {FOLDER}/images/*.jpg with {FOLDER}/train.txt and {FOLDER}/test.txt; "
        + fetch_hint(SOURCE, "human-4-4"))


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


SPEC = video_spec(
    name="human",
    shape=(3, SIZE, SIZE),
    open=open_human,
    max_length=MAX_LENGTH,
    layout=LAYOUT,
    canonical_tasks=("human-4-4",),
    train_defaults={"paper": {"epochs": 50}},
    extra_checks=[check_frames],
    description="Human3.6M: RGB 256x256 frames of people acting, 4 -> 4 at 10 fps",
)


@hookimpl
def stbench_register_datasets(register):
    register(SPEC)
