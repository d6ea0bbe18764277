"""HDF5 files, .npy arrays and .npz members opened lazily, once per process (handles must not cross a fork)."""
import os
import struct
import zipfile
from pathlib import Path

import numpy as np

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

    from stbench import checked_npy

    path = Path(path)
    if not path.exists():
        raise UserError(f"missing file {path}")
    return checked_npy(path, mmap_mode=mmap_mode)  # the header checked against the file's size first


def npz_member(path, name):
    """One array of an .npz: memory-mapped when stored uncompressed, else read whole (KeyError when absent)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name + ".npy")
        if info.compress_type != zipfile.ZIP_STORED:  # read whole, its header checked against its size first
            from stbench import checked_npz_member

            return checked_npz_member(path, name)
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        local = handle.read(30)
        if local[:4] != b"PK\x03\x04":
            raise ValueError(f"bad zip entry for {name}")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        handle.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(handle)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(handle)
        offset = handle.tell()
    needed = offset + int(np.prod(shape)) * dtype.itemsize
    if Path(path).stat().st_size < needed or int(np.prod(shape)) * dtype.itemsize > info.file_size:
        raise ValueError(f"{name}: its header declares {tuple(shape)} {dtype}, more than the archive stores; "
                         "the file is truncated or its header is wrong")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
