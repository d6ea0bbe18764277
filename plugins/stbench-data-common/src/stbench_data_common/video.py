"""Video files (AVI, MP4, ...) decoded with PyAV: frame counts, and the frames of one clip on demand."""
import os
from pathlib import Path
from typing import List

import numpy as np

from stbench import UserError, require

VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v")


def _av():
    return require("av", "reading video files", "av")


def _damaged(path, error) -> UserError:
    return UserError(f"cannot decode the video {Path(os.path.abspath(path))} ({type(error).__name__}: {error}); "
                     "the file is damaged or not a video, replace it")


def _errors():
    av = _av()
    return (OSError, ValueError, IndexError, getattr(av, "FFmpegError", OSError))


def frame_count(path) -> int:
    """Frames in a video: the container's count when it has one, else its video packets (no decoding)."""
    av = _av()
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            return sum(1 for packet in container.demux(stream) if packet.size)
    except _errors() as error:
        raise _damaged(path, error) from None


def _to_array(frame, mode):
    if mode == "L":
        return frame.to_ndarray(format="gray")[..., None]
    rgb = frame.to_ndarray(format="rgb24")
    return rgb[..., :1] if mode == "first" else rgb


def _seeked(container, stream, start: int, length: int, mode: str):
    """Frames ``start ..`` after seeking to the key frame before ``start``; None when the file's timestamps do not
    allow it (no rate or timestamps, a seek that lands after ``start``, or frames that are not consecutive)."""
    if not stream.time_base or not stream.average_rate:
        return None
    per_frame = 1 / (stream.average_rate * stream.time_base)  # timestamp units per frame
    origin = stream.start_time or 0
    container.seek(origin + int(round(start * per_frame)), stream=stream, backward=True, any_frame=False)
    frames, expected = [], None
    for frame in container.decode(stream):
        if frame.pts is None:
            return None
        number = int(round((frame.pts - origin) / per_frame))
        if expected is None and number > start:
            return None  # landed after the first frame wanted
        if expected is not None and number != expected:
            return None  # a gap or reordering: count frames from the start instead
        expected = number + 1
        if number >= start:
            frames.append(_to_array(frame, mode))
            if len(frames) == length:
                return frames
    return frames


def decode_frames(path, start: int, length: int, mode: str = "RGB") -> List[np.ndarray]:
    """Frames ``start .. start + length - 1`` as uint8 ``[H, W, C]`` (C = 3 for RGB, 1 for L / first).

    ``first`` keeps channel 0 of the RGB frame, as the frame-folder readers keep channel 0 of a JPEG.
    Decoding starts at the key frame before ``start`` when the file's timestamps allow it (a test checks it
    against counting from the start), else at the start of the file; it stops after the last frame needed.
    """
    av = _av()
    frames = None
    try:
        if start > 0:
            with av.open(str(path)) as container:
                frames = _seeked(container, container.streams.video[0], start, length, mode)
        if frames is None:
            frames, wanted = [], range(start, start + length)
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for number, frame in enumerate(container.decode(stream)):
                    if number in wanted:
                        frames.append(_to_array(frame, mode))
                    if number + 1 >= wanted.stop:
                        break
    except _errors() as error:
        raise _damaged(path, error) from None
    if len(frames) != length:
        raise UserError(f"the video {Path(os.path.abspath(path))} ends after {start + len(frames)} frames but a clip "
                        f"needs frames {start}..{start + length - 1}; the file is truncated, replace it")
    return frames
