"""Reading and preparing KTH Action videos and frames as clips (torch, PIL, video decoding)."""
import os
from functools import partial
from pathlib import Path, PurePosixPath

from stbench import UserError
from stbench_data_common import (VideoClips, check_length, copy_member, decode_frames, decode_image, end_aligned_starts,
                                 frame_count, members, non_empty, prepare_needed, require_dir, resize, resolve_split,
                                 stack_frames, staged_folder, to_unit)

from . import ACTIONS, AVI, FAST_ACTIONS, FAST_STRIDE, FOLDER, FRAME, HINT, PERSONS, SIZE, SPEC, VIDEO

# the official per-action zips or OpenSTL's kth_action.zip, left where the data belongs
DOWNLOADS = [f"{FOLDER}/{action}.zip" for action in ("boxing", "walking")] + [f"{FOLDER}/kth_action.zip", "boxing.zip",
                                                                              "kth_action.zip"]


def index_videos(root, split):
    """[(path, frame file names or None for an AVI, frame numbers, fast action?)] of the split's videos, in order.

    A video is a frame folder or an AVI file; when both exist the frame folder is read.
    """
    downloads = prepare_needed(root, "kth-10-20", DOWNLOADS, target=FOLDER)
    base = require_dir(Path(root) / FOLDER, "KTH Action videos", HINT + downloads)
    missing = [action for action in ACTIONS + FAST_ACTIONS if not (base / action).is_dir()]
    if missing:
        raise UserError(f"KTH action folders missing under {Path(os.path.abspath(base))}: {', '.join(missing)}; "
                        f"{HINT}{downloads}")
    videos = []
    for action in sorted(ACTIONS + FAST_ACTIONS):
        entries = sorted((base / action).iterdir())
        folders = {entry.name for entry in entries if entry.is_dir()}
        for entry in entries:
            match = VIDEO.match(entry.name)
            if not match or int(match[1]) not in PERSONS[split]:
                continue
            fast = action in FAST_ACTIONS
            if entry.is_dir():
                frames = sorted((int(m[1]), name) for name in _names(entry) if (m := FRAME.match(name)))
                if frames:
                    videos.append((str(entry), [name for _, name in frames], [number for number, _ in frames], fast))
            elif (avi := AVI.match(entry.name)) and avi[1] + "_uncomp" not in folders and avi[1] not in folders:
                count = frame_count(entry)
                videos.append((str(entry), None, list(range(1, count + 1)), fast))
    if not videos:
        first, last = PERSONS[split][0], PERSONS[split][-1]
        raise UserError(f"no {split} videos (persons {first:02d}-{last:02d}) under {Path(os.path.abspath(base))}: "
                        f"neither personNN_<action>_dN_uncomp.avi files nor frame folders; {HINT}")
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
    """Frames ``start .. start + length`` of one video (frame folder or AVI): channel 0, 128x128, [0, 1]."""
    path, names = videos[video][0], videos[video][1]
    if names is None:
        frames = decode_frames(path, start, length, mode="first")
    else:
        frames = [decode_image(Path(path, name), mode="first") for name in names[start:start + length]]
    return to_unit(resize(stack_frames(frames, path), (SIZE, SIZE)))


def open_kth(root, split, t_in, t_out):
    split = resolve_split("kth", split)
    length = check_length(SPEC, t_in, t_out)
    videos = index_videos(root, split)
    clips = [(video, start) for video, (_, _, numbers, fast) in enumerate(videos)
             for start in clip_starts(numbers, length, fast)]
    persons = PERSONS[split]
    avis = sum(names is None for _, names, _, _ in videos)
    kinds = f"{avis} AVIs, {len(videos) - avis} frame folders" if avis else "frame folders"
    description = f"KTH persons {persons[0]:02d}-{persons[-1]:02d}, {len(videos)} videos ({kinds})"
    dataset = VideoClips(clips, partial(read_clip, videos), t_in, t_out, SPEC, description=description)
    return non_empty(dataset, "kth", split, Path(root) / FOLDER)


def prepare_kth(source, root):
    """Sort the official per-action zips (or their AVIs, or OpenSTL's kth_action.zip) into kth/<action>/."""
    target = Path(root) / FOLDER
    counts = {action: 0 for action in ACTIONS + FAST_ACTIONS}
    frames = 0
    with staged_folder(target) as staging:
        for member, opener in members(source):
            parts = PurePosixPath(member).parts
            name = parts[-1]
            if (avi := AVI.match(name)) and avi[2].lower() in counts:
                action = avi[2].lower()
                copy_member(opener, staging / action / f"{avi[1]}_uncomp.avi")
                counts[action] += 1
            elif FRAME.match(name) and len(parts) >= 3 and parts[-3].lower() in counts and VIDEO.match(parts[-2]):
                copy_member(opener, staging / parts[-3].lower() / parts[-2] / name)  # kth_action.zip frames
                counts[parts[-3].lower()] += name.lower().endswith(("0001.jpg", "0001.png"))
                frames += 1
        missing = [action for action, count in counts.items() if not count]
        if missing:
            raise UserError(f"{Path(os.path.abspath(source))} holds no KTH video of {', '.join(missing)}; give the "
                            f"six official zips (or a folder holding them) or kth_action.zip; {HINT}")
    kind = f"{frames} JPEG frames" if frames else "AVIs"
    return (f"kth: {sum(counts.values())} videos ({kind}) written to {Path(os.path.abspath(target))}: "
            + ", ".join(f"{action} {count}" for action, count in sorted(counts.items()))
            + "; check them with 'stbench data check kth-10-20'")
