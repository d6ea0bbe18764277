"""Atomic file writes: every file stbench writes goes to a temporary file in the same folder and is renamed
into place, so a reader sees the old file or the new one, never half of one, and a failed write leaves
nothing behind. A disk that fills is one line (:class:`stbench.errors.DiskFull`): no space left where, how
much was free, writing which file."""
import contextlib
import errno
import io
import json
import os
import re
from pathlib import Path
from typing import Callable, Iterator, Optional

from .errors import DiskFull

FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
# Some writers drop the errno of a short write (numpy: "N requested and M written"; torch: "unexpected pos").
# A write that failed and left less than this free on its filesystem is taken for a full disk.
NEARLY_FULL = 1 << 20
_TEMPORARY = re.compile(r"^\.(.+)\.tmp\d+$")


def temporary_name(path) -> Path:
    """The temporary file beside ``path`` that this process writes before renaming it into place."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def _existing(path) -> Path:
    where = Path(os.path.abspath(path))
    while not where.exists() and where != where.parent:
        where = where.parent
    return where


def free_bytes(path) -> Optional[int]:
    """Bytes this process may still write on the filesystem holding ``path`` (root may use the reserve)."""
    try:
        stats = os.statvfs(_existing(path))
    except (OSError, AttributeError):
        return None
    blocks = stats.f_bfree if hasattr(os, "geteuid") and os.geteuid() == 0 else stats.f_bavail
    return blocks * stats.f_frsize


def mount_point(path) -> Path:
    """The mount point of the filesystem that holds ``path`` (the nearest folder of it that exists)."""
    where = _existing(path)
    while not os.path.ismount(where) and where != where.parent:
        where = where.parent
    return where


def disk_full(path, free: Optional[int] = None, needed: Optional[int] = None) -> DiskFull:
    """The one line for a write of ``path`` that found no space left: where, how much was free, which file."""
    path = Path(path)
    match = _TEMPORARY.match(path.name)
    name = match.group(1) if match else path.name  # the file being written, not its temporary name
    free = free_bytes(path) if free is None else free
    amount = "free space unknown" if free is None else f"{free / 2 ** 20:.1f} MB free"
    if needed:
        amount += f", {needed / 2 ** 20:.1f} MB needed"
    return DiskFull(f"no space left on {mount_point(path)} ({amount}) writing {name}; free some space and run "
                    "the same command again")


def _full_error(error: BaseException) -> Optional[OSError]:
    """The OSError with ENOSPC / EDQUOT in ``error``'s chain of causes, if any."""
    seen = 0
    while error is not None and seen < 16:
        if isinstance(error, OSError) and error.errno in FULL:
            return error
        error = error.__cause__ or error.__context__
        seen += 1
    return None


def as_disk_full(error: BaseException, path=None, free: Optional[int] = None) -> Optional[DiskFull]:
    """``error`` as a :class:`DiskFull` when a full disk caused it, else None: ENOSPC or EDQUOT anywhere in its
    chain, or a failed write of ``path`` (an OSError, or torch's RuntimeError) that left under 1 MiB free
    (``free``, measured before the failed write's temporary file was removed)."""
    if isinstance(error, DiskFull):
        return error
    found = _full_error(error)
    if found is not None:
        path = path if path is not None else (found.filename or found.filename2)
        if path is None:
            return DiskFull("no space left on the disk being written; free some space and run the same "
                            "command again")
        return disk_full(path, free)
    if path is None or not isinstance(error, (OSError, RuntimeError)):
        return None
    free = free_bytes(path) if free is None else free
    return disk_full(path, free) if free is not None and free < NEARLY_FULL else None


def reserve(handle, size: int, path) -> None:
    """Reserve ``size`` bytes for an open file (``posix_fallocate``), so a disk too small is found before
    anything is written, as an error and never as a signal (a memory map that cannot grow is SIGBUS). Where
    the filesystem cannot reserve, ordinary writes still fail with an OSError."""
    if size <= 0 or not hasattr(os, "posix_fallocate"):
        return
    fd = handle if isinstance(handle, int) else handle.fileno()
    free = free_bytes(path)
    try:
        os.posix_fallocate(fd, 0, int(size))
    except OSError as error:
        if error.errno in FULL:
            raise disk_full(path, free, needed=size) from None
        if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS, errno.ENODEV):
            raise


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place when the block succeeds, remove it
    when the block fails (a full disk must not leave a temporary file holding the space; it is one line,
    :func:`disk_full`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as error:
        full = as_disk_full(error, path, free_bytes(tmp)) if isinstance(error, Exception) else None
        with contextlib.suppress(OSError):
            tmp.unlink()
        if full is not None and full is not error:
            raise full from error
        raise


class NpyStream:
    """An ``.npy`` file of known dtype and shape written front to back with ordinary writes, its whole size
    reserved first (:func:`reserve`), renamed into place by :meth:`commit`; :meth:`discard` (or any failure)
    removes it. Arrays too large for memory stream through it batch by batch, and a full disk is an error."""

    def __init__(self, path, dtype, shape):
        import numpy as np
        from numpy.lib import format as npy

        self.path, self.tmp = Path(path), temporary_name(path)
        self.dtype, self.shape, self.rows = np.dtype(dtype), tuple(int(s) for s in shape), 0
        header = io.BytesIO()
        fields = {"descr": npy.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
        try:
            npy.write_array_header_1_0(header, fields)
        except ValueError:  # a header over 64 KiB
            header = io.BytesIO()
            npy.write_array_header_2_0(header, fields)
        self.size = len(header.getvalue()) + int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = None
        self.handle = self._guard(lambda: open(self.tmp, "wb"))
        self._guard(lambda: reserve(self.handle, self.size, self.path))
        self._guard(lambda: self.handle.write(header.getvalue()))

    def _guard(self, action):
        try:
            return action()
        except BaseException as error:
            full = as_disk_full(error, self.path, free_bytes(self.tmp)) if isinstance(error, Exception) else None
            self.discard()
            if full is not None and full is not error:
                raise full from error
            raise

    def write(self, values) -> None:
        """Append rows (``values`` of shape ``[n, *shape[1:]]``)."""
        import numpy as np

        values = np.ascontiguousarray(values, dtype=self.dtype)
        if values.shape[1:] != self.shape[1:] or self.rows + len(values) > self.shape[0]:
            self.discard()
            raise ValueError(f"{self.path.name}: rows of shape {values.shape} do not fit {self.shape} after "
                             f"{self.rows} rows")
        self._guard(lambda: self.handle.write(memoryview(values).cast("B")))
        self.rows += len(values)

    def commit(self) -> Path:
        if self.rows != self.shape[0]:
            self.discard()
            raise ValueError(f"{self.path.name}: {self.rows} of {self.shape[0]} rows written")

        def finish():
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()
            os.replace(self.tmp, self.path)

        self._guard(finish)
        return self.path

    def discard(self) -> None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            self.handle.close()
        with contextlib.suppress(OSError):
            self.tmp.unlink()


def write_with(path, write: Callable[[Path], None]) -> Path:
    """Write ``path`` atomically with ``write(temporary path)`` (np.savez, torch.save, savefig, ...)."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_bytes_atomic(path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)


def write_text_atomic(path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path, payload) -> Path:
    return write_text_atomic(path, json.dumps(payload, indent=2, default=_jsonable) + "\n")


def _jsonable(value):
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


@contextlib.contextmanager
def locked(path, waiting: Optional[Callable[[], None]] = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the block; processes that share an output
    folder take turns. ``waiting()`` is called once when another process holds it (then this one waits).
    The lock goes with the process: a killed holder never leaves a stale lock behind."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def try_locked(path) -> Iterator[bool]:
    """Hold ``path``'s exclusive lock for the block if it is free now (yields True), else yield False at once."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_stale_temporaries(folder) -> None:
    """Remove temporary files a killed process left in ``folder`` (call it holding the folder's lock)."""
    for leftover in Path(folder).glob(".*.tmp[0-9]*"):
        with contextlib.suppress(OSError):
            leftover.unlink()
