"""Readers for a custom dataset's sequences: one array [N, T, ...] (.npy / .npz / HDF5) or a folder of videos or
image sequences. Each gives sequences of frames ``[T, C, H, W]`` as stored (float32), read on demand.

Opening a source reads only its shape (numpy, PIL, the video header), so a custom dataset registers without
torch; torch and the frame decoders load when frames are read."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Tuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from stbench import UserError
from stbench_data_common.arrays import LazyH5, load_npy, npz_member, read_h5
from stbench_data_common.video import VIDEO_SUFFIXES, decode_frames, frame_count

if TYPE_CHECKING:
    import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
ARRAY_SUFFIXES = (".npy", ".npz", ".h5", ".hdf5")
_NUMBER = re.compile(r"(\d+)")


def natural_key(name: str):
    """``frame_2`` before ``frame_10``: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in _NUMBER.split(name)]


class ArraySource:
    """Sequences stored as one array: [N, T, C, H, W] (layout NTCHW), [N, T, H, W, C] (NTHWC) or [N, T, H, W]."""

    kind = "array"

    def __init__(self, path: Path, key: Optional[str], layout: str, what: str):
        self.path, self.key, self.layout, self.what = Path(path), key, layout, what
        self._h5 = LazyH5(f"{what} names it")
        self._cached, self._pid = None, None
        array = self.array
        if array.ndim not in (4, 5):
            raise UserError(f"{what}: {self.path}{self._member()} has shape {tuple(array.shape)}; expected "
                            f"[N, T, C, H, W] ({layout}) or [N, T, H, W]")
        if array.dtype.kind not in "uif" or array.dtype.kind == "c":
            raise UserError(f"{what}: {self.path}{self._member()} holds {array.dtype} values; expected numbers")
        shape = tuple(int(n) for n in array.shape)
        self.count, self.length = shape[0], shape[1]
        if array.ndim == 4:
            self.frame_shape = (1,) + shape[2:]
        elif layout == "NTHWC":
            self.frame_shape = (shape[4], shape[2], shape[3])
        else:
            self.frame_shape = shape[2:]
        self.dtype = array.dtype

    def _member(self):
        return f" ['{self.key}']" if self.key else ""

    @property
    def array(self):
        """The array, opened once per process (memory-mapped .npy, an .npz member, an HDF5 dataset)."""
        if self._cached is None or self._pid != os.getpid():
            self._cached, self._pid = self._load(), os.getpid()
        return self._cached

    def _load(self):
        suffix = self.path.suffix.lower()
        if not self.path.exists():
            raise UserError(f"{self.what}: missing file {self.path}")
        if suffix == ".npy":
            return load_npy(self.path)
        if suffix == ".npz":
            try:
                return npz_member(self.path, self.key)
            except KeyError:
                raise UserError(f"{self.what}: {self.path} has no array '{self.key}'") from None
            except (OSError, ValueError, EOFError) as error:
                raise UserError(f"{self.what}: cannot read '{self.key}' from {self.path} ({error}); the file is "
                                "truncated or damaged") from None
        handle = self._h5[self.path]
        if self.key not in handle or not hasattr(handle[self.key], "shape"):
            raise UserError(f"{self.what}: {self.path} has no dataset '{self.key}'")
        return handle[self.key]

    def __getstate__(self):  # DataLoader workers reopen the file themselves
        return {**self.__dict__, "_h5": LazyH5(self._h5.hint), "_cached": None, "_pid": None}

    def sequence_lengths(self) -> List[int]:
        return [self.length] * self.count

    def read(self, sequence: int, start: int, length: int) -> torch.Tensor:
        selection = (sequence, slice(start, start + length))
        frames = read_h5(self.array, selection, f"{self.what}: {self.path}") if self.path.suffix.lower() in (
            ".h5", ".hdf5") else np.asarray(self.array[selection])
        frames = np.array(frames, dtype=np.float32)  # a copy: memory-mapped data stay read-only
        if frames.ndim == 3:
            frames = frames[:, None]
        elif self.layout == "NTHWC":
            frames = frames.transpose(0, 3, 1, 2)
        import torch  # here: opening a source for registration must not import torch

        return torch.from_numpy(np.ascontiguousarray(frames))


class FolderSource:
    """Sequences stored as files: each video file, and each sub-folder of numbered images, is one sequence."""

    kind = "folder"

    def __init__(self, path: Path, size: Optional[Tuple[int, int]], channels: Optional[int], what: str):
        self.path, self.size, self.what = Path(path), size, what
        if not self.path.is_dir():
            raise UserError(f"{what}: missing folder {self.path} (videos or folders of image frames)")
        self.sequences = []  # (path, frame names or None for a video)
        for entry in sorted(self.path.iterdir(), key=lambda p: natural_key(p.name)):
            if entry.is_file() and entry.suffix.lower() in VIDEO_SUFFIXES:
                self.sequences.append((str(entry), None))
            elif entry.is_dir():
                names = sorted((name for name in os.listdir(entry) if Path(name).suffix.lower() in IMAGE_SUFFIXES),
                               key=natural_key)
                if names:
                    self.sequences.append((str(entry), names))
        if not self.sequences:
            raise UserError(f"{what}: {self.path} holds no video ({', '.join(VIDEO_SUFFIXES)}) and no sub-folder of "
                            f"image frames ({', '.join(IMAGE_SUFFIXES)})")
        self.channels = channels or 3
        self.mode = "RGB" if self.channels == 3 else "L"
        self.count = len(self.sequences)
        self.dtype = np.dtype(np.uint8)
        self.frame_shape = (self.channels,) + (size or self._first_frame_size())
        self._lengths = None

    def _first_frame_size(self) -> Tuple[int, int]:
        path, names = self.sequences[0]
        if names is None:
            frame = decode_frames(path, 0, 1, mode=self.mode)[0]
            return frame.shape[0], frame.shape[1]
        try:
            with Image.open(Path(path, names[0])) as image:
                return image.size[1], image.size[0]
        except (OSError, UnidentifiedImageError) as error:
            raise UserError(f"{self.what}: cannot read {Path(path, names[0])} ({error}); replace it") from None

    def sequence_lengths(self) -> List[int]:
        if self._lengths is None:
            self._lengths = [frame_count(path) if names is None else len(names) for path, names in self.sequences]
        return self._lengths

    def read(self, sequence: int, start: int, length: int) -> torch.Tensor:
        from stbench_data_common.frames import decode_image, resize, stack_frames  # torch: only to read frames

        path, names = self.sequences[sequence]
        if names is None:
            frames = decode_frames(path, start, length, mode=self.mode)
        else:
            frames = [decode_image(Path(path, name), mode=self.mode) for name in names[start:start + length]]
        clip = stack_frames(frames, path)
        if self.size is not None:
            clip = resize(clip, self.size, mode="bilinear", antialias=True)
        if tuple(clip.shape[1:]) != self.frame_shape:
            raise UserError(f"{self.what}: frames of {path} are {tuple(clip.shape[2:])} but the dataset's frames are "
                            f"{self.frame_shape[1:]}; give frames: {{size: [H, W]}} in the YAML file to resize them")
        return clip


def open_source(path: Path, key, layout, size, channels, what):
    """The reader for one source: an array file by its suffix, else a folder."""
    if Path(path).suffix.lower() in ARRAY_SUFFIXES:
        return ArraySource(path, key, layout, what)
    return FolderSource(path, size, channels, what)
