"""HDF5 files and .npy arrays opened lazily, once per process (handles must not cross a DataLoader fork)."""
import os
from pathlib import Path

from stbench import UserError


def open_h5(path: Path, hint: str):
    """An h5py File, or a UserError for a missing, truncated or non-HDF5 file."""
    import h5py  # the HDF5-based plugins depend on h5py; the others never import it

    path = Path(path)
    if not path.is_file():
        raise UserError(f"missing file {path}; {hint}")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise UserError(f"cannot open {path} as HDF5 ({error}); the file is truncated or corrupt, "
                        "download it again") from None


class LazyH5:
    """``files[path]`` opens ``path`` on first use in the current process and keeps it open."""

    def __init__(self, hint: str):
        self.hint, self._files, self._pid = hint, {}, os.getpid()

    def __getitem__(self, path):
        if self._pid != os.getpid():  # a forked worker: the parent's handles are not ours
            self._files, self._pid = {}, os.getpid()
        key = str(path)
        if key not in self._files:
            self._files[key] = open_h5(Path(key), self.hint)
        return self._files[key]

    def __getstate__(self):  # spawned workers reopen the files themselves
        return {"hint": self.hint, "_files": {}, "_pid": None}


def read_h5(dataset, selection, what: str):
    """``dataset[selection]``, with read errors (corrupt chunks) as a UserError naming ``what``."""
    try:
        return dataset[selection]
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"cannot read {what} ({error}); the file is corrupt, download it again") from None


class LazyNpy:
    """A .npy array memory-mapped on first use in each process (never pickled with its data)."""

    def __init__(self, path):
        self.path, self._array, self._pid = str(path), None, None

    @property
    def array(self):
        if self._array is None or self._pid != os.getpid():
            self._array, self._pid = load_npy(self.path), os.getpid()
        return self._array

    def __getstate__(self):
        return {"path": self.path, "_array": None, "_pid": None}


def load_npy(path, mmap_mode="r"):
    """``np.load`` with a UserError for a missing, truncated or non-.npy file."""
    import numpy as np

    path = Path(path)
    try:
        return np.load(path, mmap_mode=mmap_mode)
    except FileNotFoundError:
        raise UserError(f"missing file {path}") from None
    except (OSError, ValueError, EOFError) as error:
        raise UserError(f"cannot read {path} as a .npy array ({error}); the file is truncated or corrupt, "
                        "download it again") from None
