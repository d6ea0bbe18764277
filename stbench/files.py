"""Atomic file writes: every file stbench writes goes to a temporary file in the same folder and is renamed
into place, so a reader sees the old file or the new one, never half of one, and a failed write leaves
nothing behind."""
import contextlib
import json
import os
from pathlib import Path
from typing import Callable, Iterator, Optional


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place when the block succeeds, remove it
    when the block fails (a full disk must not leave a temporary file holding the space)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


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
