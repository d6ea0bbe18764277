"""Reading SEVIR VIL HDF5 files into clips (numpy, torch, h5py)."""
import os
from pathlib import Path

import numpy as np
import torch
from stbench import Clips, UserError, require

from . import FILES, FOLDER, FUTURE, HINT, OBSERVED, SIZE


def _h5py():
    return require("h5py", "SEVIR", "h5py")


def inspect(path):
    """Number of sequences in one SEVIR file, after checking its datasets and shapes."""
    h5py = _h5py()
    if not path.exists():
        raise UserError(f"SEVIR: {Path(os.path.abspath(path))} not found; {HINT}")
    try:
        with h5py.File(path, "r") as handle:
            shapes = {}
            for name, frames in (("IN", OBSERVED), ("OUT", FUTURE)):
                if name not in handle:
                    raise UserError(f"SEVIR: {path} has no dataset '{name}'; expected IN and OUT")
                shape = tuple(handle[name].shape)
                if len(shape) != 4 or shape[1:] != (SIZE, SIZE, frames):
                    raise UserError(f"SEVIR: {path}: '{name}' has shape {shape}; expected (N, {SIZE}, {SIZE}, {frames})")
                shapes[name] = shape
    except UserError:
        raise
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"SEVIR: cannot read {path} ({error}); the file looks damaged, download or convert it again") from None
    if shapes["IN"][0] != shapes["OUT"][0]:
        raise UserError(f"SEVIR: {path}: IN holds {shapes['IN'][0]} sequences but OUT holds {shapes['OUT'][0]}")
    return shapes["IN"][0]


def window(t_in, t_out):
    """First frame of the clip in IN+OUT, cut at the observed/future boundary when the task fits it."""
    return min(max(0, OBSERVED - t_in), OBSERVED + FUTURE - t_in - t_out)


class SevirClips(Clips):
    """(x, y) from IN / OUT, read one sequence at a time; the file opens lazily in each worker process."""

    def __init__(self, path, count, t_in, t_out, description=""):
        self.path, self.count, self.t_in, self.t_out = str(path), count, t_in, t_out
        self.start = window(t_in, t_out)
        self.description = description
        self._handle, self._pid = None, None

    def __len__(self):
        return self.count

    def __getstate__(self):
        return {**self.__dict__, "_handle": None, "_pid": None}

    def _file(self):
        if self._handle is None or self._pid != os.getpid():
            self._handle, self._pid = _h5py().File(self.path, "r"), os.getpid()
        return self._handle

    def __getitem__(self, index):
        handle = self._file()
        stop = self.start + self.t_in + self.t_out
        parts = []
        try:
            if self.start < OBSERVED:
                parts.append(handle["IN"][index, :, :, self.start:min(stop, OBSERVED)])
            if stop > OBSERVED:
                parts.append(handle["OUT"][index, :, :, max(0, self.start - OBSERVED):stop - OBSERVED])
        except (OSError, ValueError) as error:
            raise UserError(f"SEVIR: cannot read sequence {index} of {self.path} ({error}); the file looks damaged") from None
        clip = np.concatenate(parts, axis=-1).transpose(2, 0, 1)[:, None]  # (H, W, T) -> (T, 1, H, W)
        clip = torch.from_numpy(clip.astype(np.float32) / 255.0)
        return clip[: self.t_in], clip[self.t_in:]


def open_sevir(root, split, t_in, t_out):
    if split == "val":
        split = "test"
    if split not in FILES:
        raise UserError(f"sevir has splits train and test, not '{split}'")
    path = Path(root) / FOLDER / FILES[split]
    count = inspect(path)
    return SevirClips(path, count, t_in, t_out, description=f"{FOLDER}/{FILES[split]}: {count} sequences")


def check_sevir(root):
    lines = []
    for split, name in FILES.items():
        path = Path(root) / FOLDER / name
        count = inspect(path)
        with _h5py().File(path, "r") as handle:
            first = handle["IN"][0] if count else np.zeros(1, np.uint8)
        lines.append(f"{split}: {count} sequences of {OBSERVED}+{FUTURE} frames of {SIZE}x{SIZE}, "
                     f"VIL {int(first.min())}..{int(first.max())} in the first sequence (expected within 0..255)")
    return "\n".join(lines)
