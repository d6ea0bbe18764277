"""Reading RoboNet's HDF5 trajectories (MP4 or JPEG camera streams) into clips with PredBench's lists (h5py, PyAV)."""
import io
import json
import os
import random
from functools import partial
from pathlib import Path
from typing import Dict, List, NamedTuple

import numpy as np

from stbench import UserError, require
from stbench_data_common import (VideoClips, check_length, decode_image, describe_split, non_empty, read_json,
                                 require_dir, resize_like_opencv, sample_frames_start, stack_frames, tasks_by_length,
                                 to_unit)

from . import ANNOTATIONS, FOLDER, HEIGHT, HINT, INDEX, SPEC, SPLIT_HINT, SPLITS, TEST_CAMERA_SEED, WIDTH

INDEX_VERSION = 1


class Trajectory(NamedTuple):
    """What PredBench reads from RoboNet's meta_data.pkl, read here from the file itself."""

    frames: int  # img_T
    cameras: int  # ncam
    encoding: str  # img_encoding: 'mp4' or 'jpg'
    image_format: str  # 'RGB' or 'BGR'


def _h5py():
    return require("h5py", "RoboNet", "h5py")


def _text(value) -> str:
    return value.decode() if isinstance(value, (bytes, np.bytes_)) else str(value)


def _damaged(path, error) -> UserError:
    return UserError(f"cannot read the RoboNet file {path} ({type(error).__name__}: {error}); it is truncated or not "
                     f"a RoboNet trajectory, download it again")


def read_metadata(path: Path) -> Trajectory:
    """Frame count, cameras, encoding and channel order, as RoboNet's metadata_helper derives them."""
    try:
        with _h5py().File(path, "r") as handle:
            env = handle["env"]
            cameras = int(env.attrs.get("n_cams", 0))
            if cameras < 1:
                raise UserError(f"the RoboNet file {path} holds no camera stream (env attribute n_cams is {cameras})")
            encoding = _text(env.attrs["cam_encoding"])
            video = env["cam0_video"]
            if encoding == "mp4":
                frames, image_format = int(video["frames"].attrs["T"]), video["frames"].attrs["image_format"]
            elif encoding == "jpg":
                frames, image_format = len(video), video["frame0"].attrs["image_format"]
            else:
                raise UserError(f"the RoboNet file {path} stores its cameras as '{encoding}'; expected mp4 or jpg")
    except UserError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise _damaged(path, error) from None
    return Trajectory(frames, cameras, encoding, _text(image_format))


def listed_files(root, split: str) -> List[str]:
    if split not in SPLITS:
        raise UserError(f"robonet has splits {', '.join(SPLITS)}, not '{split}'")
    path = Path(os.path.abspath(root)) / ANNOTATIONS / f"robonet_{split}.json"
    names = read_json(path, f"PredBench's RoboNet {split} list", SPLIT_HINT, kind=list)
    if not names or not all(isinstance(name, str) and name for name in names):
        raise UserError(f"{path} must list RoboNet file names (strings); replace it ({SPLIT_HINT})")
    return names


def _load_index(path: Path) -> Dict[str, list]:
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        return stored["files"] if stored.get("version") == INDEX_VERSION else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}  # a missing or damaged index is rebuilt from the files


def metadata(folder: Path, names: List[str]) -> Dict[str, Trajectory]:
    """Each listed file's Trajectory, from the index beside the files where it is current, else from the file."""
    index_path = folder / INDEX
    index, changed, found, missing = _load_index(index_path), False, {}, []
    for name in names:
        path = folder / name
        try:
            stat = path.stat()
        except FileNotFoundError:
            missing.append(path)
            continue
        key = [stat.st_size, stat.st_mtime_ns]
        entry = index.get(name)
        if not (isinstance(entry, list) and len(entry) == 6 and entry[:2] == key):
            entry = key + list(read_metadata(path))
            index[name], changed = entry, True
        found[name] = Trajectory(*entry[2:])
    if missing:
        raise UserError(f"{len(missing)} of the {len(names)} RoboNet files listed are missing under {folder}, e.g. "
                        f"{missing[0].name}; {HINT}")
    if changed:
        try:  # written whole under another name, then renamed: a reader never sees half an index
            temporary = index_path.with_name(f"{INDEX}.{os.getpid()}.tmp")
            temporary.write_text(json.dumps({"version": INDEX_VERSION, "files": index}), encoding="utf-8")
            os.replace(temporary, index_path)
        except OSError:
            pass  # a read-only data folder: the next open reads the files again
    return found


def _decode_mp4(data: bytes, start: int, length: int, path) -> List[np.ndarray]:
    """Frames ``start ..`` of an in-file MP4 stream as RGB arrays (PyAV; the same pixels as imageio-ffmpeg)."""
    av = require("av", "RoboNet's MP4 camera streams", "av")
    frames = []
    try:
        with av.open(io.BytesIO(data), format="mp4") as container:
            for number, frame in enumerate(container.decode(video=0)):
                if number >= start:
                    frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) == length:
                    break
    except (OSError, ValueError, getattr(av, "FFmpegError", OSError)) as error:
        raise _damaged(path, error) from None
    return frames


def read_frames(folder: Path, name: str, trajectory: Trajectory, camera: int, start: int, length: int):
    """``length`` frames of one camera from ``start``: channels as PredBench's RobonetDecode leaves them, resized to
    120x160 as OpenCV does, /255."""
    path = folder / name
    try:
        with _h5py().File(path, "r") as handle:
            video = handle["env"][f"cam{camera}_video"]
            if trajectory.encoding == "mp4":
                frames = _decode_mp4(video["frames"][:].tobytes(), start, length, path)
            else:
                frames = [decode_image(video[f"frame{t}"][:].tobytes(), "RGB", what=f"{path} camera {camera} frame {t}")
                          for t in range(start, start + length)]
    except UserError:
        raise
    except (OSError, KeyError, ValueError) as error:
        raise _damaged(path, error) from None
    if len(frames) != length:
        raise UserError(f"the RoboNet file {path} camera {camera} holds fewer than {start + length} frames though its "
                        f"metadata says {trajectory.frames}; download it again")
    clip = stack_frames(frames, f"{path} camera {camera}")
    if trajectory.image_format == "BGR":  # RoboNet's loader reverses the channels of streams stored as BGR
        clip = clip.flip(1)
    return to_unit(resize_like_opencv(clip, (HEIGHT, WIDTH)))


class RoboNetClips(VideoClips):
    """One clip per trajectory: ``clips`` holds ``(file name, Trajectory, camera)``; starts as PredBench samples."""

    def __init__(self, entries, random_start, *args, **kwargs):
        super().__init__(entries, *args, **kwargs)
        self.random_start = random_start

    def clip(self, index):
        name, trajectory, camera = self.clips[index]
        return (name, trajectory, camera), sample_frames_start(trajectory.frames, self.t_in + self.t_out,
                                                                self.random_start)


def _read(folder, video, start, length):
    name, trajectory, camera = video
    return read_frames(folder, name, trajectory, camera, start, length)


def open_robonet(root, split, t_in, t_out):
    length = check_length(SPEC, t_in, t_out)
    names = listed_files(root, split)
    folder = require_dir(Path(os.path.abspath(root)) / FOLDER, "RoboNet HDF5 files", HINT)
    found = metadata(folder, names)
    chooser = random.Random(TEST_CAMERA_SEED)
    entries = []
    for name in names:
        trajectory = found[name]
        if trajectory.frames < length:  # PredBench skips these before drawing a camera
            continue
        camera = 0 if split == "train" else chooser.choice(range(trajectory.cameras))
        entries.append((name, trajectory, camera))
    how = "camera 0, random start" if split == "train" else f"one camera each (seed {TEST_CAMERA_SEED}), centre start"
    dataset = RoboNetClips(entries, split == "train", partial(_read, folder), t_in, t_out, SPEC,
                           description=f"robonet_{split}.json: {len(entries)} of {len(names)} trajectories hold "
                                       f"{length} frames; one clip each, {how}")
    return non_empty(dataset, "robonet", split, folder)


def check_files(root) -> str:
    """Every listed file is there and readable; its frame counts and cameras (this fills the index)."""
    lines = []
    folder = require_dir(Path(os.path.abspath(root)) / FOLDER, "RoboNet HDF5 files", HINT)
    for split in SPLITS:
        found = metadata(folder, listed_files(root, split)).values()
        frames, cameras = [t.frames for t in found], [t.cameras for t in found]
        encodings = sorted({t.encoding for t in found})
        lines.append(f"{split}: {len(frames)} files, {min(frames)}..{max(frames)} frames, "
                     f"{min(cameras)}..{max(cameras)} cameras, {'/'.join(encodings)} streams")
    return "; ".join(lines)


def check_val(root) -> str:
    """The validation split at every canonical clip length (the report covers train and test)."""
    return "\n  ".join(describe_split(SPEC, root, "val", task) for task in tasks_by_length(SPEC).values())
