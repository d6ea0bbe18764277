"""stbench dataset plugin: KTH Action, read from the JPEG frame folders OpenSTL distributes."""
import re
from functools import partial
from pathlib import Path

from stbench import UserError, hookimpl
from stbench_data_common import (VideoClips, check_length, decode_image, end_aligned_starts, non_empty, require_dir,
                                 resize, resolve_split, stack_frames, to_unit, video_spec)

FOLDER = "kth"
SIZE = 128
# OpenSTL's KTH loader: clips of these actions are taken every clip length ...
ACTIONS = ("boxing", "handclapping", "handwaving", "walking")
# ... and of these fast ones every 3 frames.
FAST_ACTIONS = ("jogging", "running")
FAST_STRIDE = 3
PERSONS = {"train": range(1, 17), "test": range(17, 26)}
MAX_LENGTH = 50  # kth-10-40; the shortest KTH videos still hold a few 50-frame clips
VIDEO = re.compile(r"^person(\d+)_")
FRAME = re.compile(r"^image\D*(\d+)\.(jpe?g|png)$", re.IGNORECASE)

SOURCE = "https://www.csc.kth.se/cvap/actions/ (frames: OpenSTL's kth_action.zip release)"
LAYOUT = f"""KTH Action ({FOLDER}/ under the data root), as JPEG frames:
  {FOLDER}/{{boxing,handclapping,handwaving,jogging,running,walking}}/personNN_<action>_dN_uncomp/image_NNNN.jpg
Source: {SOURCE}. 25 persons x 6 actions x 4 scenarios (599 videos of 160x120 frames, 25 fps);
the AVIs from the KTH site must first be split into image_NNNN.jpg frames.
Splits: persons 01-16 train, 17-25 test. Frames: channel 0, resized to 128x128 (bilinear), /255 -> [0, 1].
Clips: windows taken backwards from each video's end, every clip length for boxing / handclapping /
handwaving / walking and every 3 frames for jogging / running; a window never spans a gap in the numbering.
Expected counts: USTEP Table I 4,940 train / 3,030 test clips; UniSTD Table 1 (kth-10-10) 8,488 / 5,041."""
HINT = f"expected {FOLDER}/<action>/personNN_<action>_dN_uncomp/image_NNNN.jpg; get KTH from {SOURCE}"


def index_videos(root, split):
    """[(folder, frame file names, frame numbers, fast action?)] of the split's videos, in a fixed order."""
    base = require_dir(Path(root) / FOLDER, "KTH Action frames", HINT)
    missing = [action for action in ACTIONS + FAST_ACTIONS if not (base / action).is_dir()]
    if missing:
        raise UserError(f"KTH action folders missing under {base}: {', '.join(missing)}; {HINT}")
    videos = []
    for action in sorted(ACTIONS + FAST_ACTIONS):
        for folder in sorted(p for p in (base / action).iterdir() if p.is_dir()):
            match = VIDEO.match(folder.name)
            if not match or int(match[1]) not in PERSONS[split]:
                continue
            frames = sorted((int(m[1]), name) for name in _names(folder) if (m := FRAME.match(name)))
            if frames:
                videos.append((str(folder), [name for _, name in frames], [number for number, _ in frames],
                               action in FAST_ACTIONS))
    if not videos:
        first, last = PERSONS[split][0], PERSONS[split][-1]
        raise UserError(f"no {split} videos (persons {first:02d}-{last:02d}) with image_NNNN.jpg frames under "
                        f"{base}; {HINT}")
    return videos


def _names(folder):
    try:
        return [entry.name for entry in folder.iterdir()]
    except OSError as error:
        raise UserError(f"cannot list {folder} ({error})") from None


def clip_starts(numbers, length, fast):
    """OpenSTL's windows: from the end, every ``length`` (every 3 for fast actions), consecutive numbers only."""
    stride = FAST_STRIDE if fast else length
    return end_aligned_starts(len(numbers), length, stride,
                              fits=lambda start, end: numbers[end] - numbers[start] == length - 1)


def read_clip(videos, video, start, length):
    """Frames ``start .. start + length`` of one video: channel 0, 128x128, [0, 1]."""
    folder, names = videos[video][0], videos[video][1]
    frames = [decode_image(Path(folder, name), mode="first") for name in names[start:start + length]]
    return to_unit(resize(stack_frames(frames, folder), (SIZE, SIZE)))


def open_kth(root, split, t_in, t_out):
    split = resolve_split("kth", split)
    length = check_length(SPEC, t_in, t_out)
    videos = index_videos(root, split)
    clips = [(video, start) for video, (_, _, numbers, fast) in enumerate(videos)
             for start in clip_starts(numbers, length, fast)]
    persons = PERSONS[split]
    description = f"KTH persons {persons[0]:02d}-{persons[-1]:02d}, {len(videos)} videos"
    dataset = VideoClips(clips, partial(read_clip, videos), t_in, t_out, SPEC, description=description)
    return non_empty(dataset, "kth", split, Path(root) / FOLDER)


SPEC = video_spec(
    name="kth",
    shape=(1, SIZE, SIZE),
    open=open_kth,
    max_length=MAX_LENGTH,
    layout=LAYOUT,
    canonical_tasks=("kth-10-20", "kth-10-40", "kth-10-10"),
    train_defaults={"paper": {"epochs": 100}},
    description="KTH Action: 25 persons, 6 actions, grey 128x128 frames",
)


@hookimpl
def stbench_register_datasets(register):
    register(SPEC)
