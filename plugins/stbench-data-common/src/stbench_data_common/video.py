"""Video files (AVI, MP4, ...) decoded with PyAV: frame counts, and the frames of one clip on demand."""
import os
from pathlib import Path
from typing import List

import numpy as np

from stbench import UserError

VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v")


def _av():
    try:
        import av
    except ImportError:
        raise UserError("reading video files needs PyAV: pip install av") from None
    return av


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


def decode_frames(path, start: int, length: int, mode: str = "RGB") -> List[np.ndarray]:
    """Frames ``start .. start + length - 1`` as uint8 ``[H, W, C]`` (C = 3 for RGB, 1 for L / first).

    ``first`` keeps channel 0 of the RGB frame, as the frame-folder readers keep channel 0 of a JPEG.
    Decoding runs from the start of the file and stops after the last frame needed.
    """
    av = _av()
    wanted, frames = range(start, start + length), []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for number, frame in enumerate(container.decode(stream)):
                if number in wanted:
                    if mode == "L":
                        frames.append(frame.to_ndarray(format="gray")[..., None])
                    else:
                        rgb = frame.to_ndarray(format="rgb24")
                        frames.append(rgb[..., :1] if mode == "first" else rgb)
                if number + 1 >= wanted.stop:
                    break
    except _errors() as error:
        raise _damaged(path, error) from None
    if len(frames) != length:
        raise UserError(f"the video {Path(os.path.abspath(path))} ends after {start + len(frames)} frames but a clip "
                        f"needs frames {start}..{start + length - 1}; the file is truncated, replace it")
    return frames
