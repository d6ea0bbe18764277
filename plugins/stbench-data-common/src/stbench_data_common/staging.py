"""`stbench data prepare` helpers: reading a download (zip, tar, folder) and building a layout atomically.

A layout is built in a hidden temporary folder beside its final place and renamed into place only
when complete, so a failed or interrupted preparation never leaves a half-written layout behind.
Files are written under names stbench computes itself, never under names taken from an archive.
"""
import glob
import os
import re
import shutil
import socket
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable, Iterator, List, Optional, Tuple

from stbench import DiskFull, UserError

Member = Tuple[str, Callable[[], BinaryIO]]  # (path inside the download, open it for reading)


STALE_AFTER = 24 * 3600  # a staging folder of an older stbench (no owner in its name) untouched this long is stale


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def _owner_gone(folder: Path) -> bool:
    """Whether the process that made a staging folder ``.<name>.preparing-<pid>@<host>-XXXX`` has ended (on this
    machine; another machine's are left alone), or, for a folder without an owner in its name, whether it was
    left untouched for a day."""
    match = re.search(r"\.preparing-(\d+)@([A-Za-z0-9-]+)-", folder.name)
    if match is None:
        try:
            return time.time() - folder.stat().st_mtime > STALE_AFTER
        except OSError:
            return False
    if match.group(2) != _host():
        return False
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, ValueError):
        return False
    return False


def remove_stale_staging(target) -> List[Path]:
    """Remove the staging folders of ``target`` that a killed ``stbench data prepare`` left beside it (their
    owner process is gone); returns them."""
    target = Path(os.path.abspath(target))
    removed = []
    for folder in sorted(target.parent.glob(f".{glob.escape(target.name)}.preparing-*")):
        if folder.is_dir() and _owner_gone(folder):
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                removed.append(folder)
    return removed


@contextmanager
def staged_folder(target):
    """Yield an empty temporary folder; on success it becomes ``target`` (which must not exist yet). Staging
    folders a killed preparation left beside ``target`` are removed first (their owner process is gone); a
    disk that fills is one line (where, how much was free) and leaves nothing behind."""
    from stbench import as_disk_full, free_bytes

    target = Path(os.path.abspath(target))
    if target.exists():
        raise UserError(f"{target} already exists; remove it (or prepare into another --data-root) and run "
                        "'stbench data prepare' again")
    for folder in remove_stale_staging(target):
        print(f"stbench: note: removed {folder}, left by an interrupted 'stbench data prepare'", file=sys.stderr)
    created = [parent for parent in target.parents if not parent.exists()]  # removed again on failure
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.preparing-{os.getpid()}@{_host()}-",
                                        dir=target.parent))
    except OSError as error:
        full = as_disk_full(error, target)
        if full is not None:
            raise full from None
        raise UserError(f"cannot create {target} ({error.strerror}); choose a writable --data-root") from None
    try:
        yield staging
        os.replace(staging, target)
    except BaseException as error:
        free = free_bytes(staging)  # before the staged files are removed: what the disk had left
        full = as_disk_full(error, _writing(error, staging, target), free) if isinstance(error, Exception) else None
        shutil.rmtree(staging, ignore_errors=True)
        for parent in created:  # innermost first
            try:
                parent.rmdir()
            except OSError:
                break
        if full is not None:
            raise DiskFull(f"{full} (nothing was left behind)") from None
        if isinstance(error, OSError):
            raise UserError(f"cannot write {target} ({error.strerror or error}); nothing was left behind, free "
                            "some space or choose another --data-root") from None
        raise


def _writing(error: BaseException, staging: Path, target: Path) -> Path:
    """The file a failed write was writing, named by its place in ``target`` (not in the staging folder)."""
    name = getattr(error, "filename", None)
    if name:
        try:
            return target / Path(name).relative_to(staging)
        except ValueError:
            pass
    return target


def prepare_needed(root, task: str, patterns, target: Optional[str] = None) -> str:
    """When a download lies under ``root`` unprepared (glob ``patterns``), the sentence telling the user to
    prepare it; else "". Missing-data messages append it so that `stbench data check` says when to prepare.

    ``target`` is the folder prepare writes (relative to ``root``): a download found inside it must move out
    first, as prepare never writes into an existing folder.
    """
    root = Path(os.path.abspath(root))
    for pattern in patterns:
        found = sorted(root.glob(pattern))
        if not found:
            continue
        if target is not None and root / target in found[0].parents:
            return (f"; {found[0]} looks like the download, not yet laid out: move it out of {root / target} and "
                    f"run 'stbench data prepare {task} --from <where it is now>'")
        source = found[0] if len(found) == 1 else found[0].parent
        return (f"; {found[0]} looks like the download, not yet laid out: run 'stbench data prepare {task} "
                f"--from {source}'")
    return ""


def is_archive(path) -> bool:
    path = Path(path)
    return path.is_file() and (zipfile.is_zipfile(path) or _is_tar(path))


def _is_tar(path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def members(source, nested: bool = True) -> Iterator[Member]:
    """Every regular file of a zip, a tar (any compression) or a folder, as ``(relative path, opener)``.

    With ``nested``, archives found inside a folder are opened too (e.g. KTH's six zips side by side);
    their members are named ``<archive path>/<member path>``. Open each member before asking for the
    next one: an archive is closed once it has been walked.
    """
    source = Path(source)
    try:
        if source.is_dir():
            for folder, _, names in sorted(os.walk(source)):
                for name in sorted(names):
                    path = Path(folder, name)
                    relative = path.relative_to(source).as_posix()
                    if nested and is_archive(path):
                        for inner, opener in members(path, nested=False):
                            yield f"{relative}/{inner}", opener
                    else:
                        yield relative, (lambda p=path: open(p, "rb"))
        elif zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as archive:
                for info in archive.infolist():
                    if not info.is_dir():
                        yield info.filename, (lambda i=info, a=archive: a.open(i))
        elif _is_tar(source):
            with tarfile.open(source) as archive:
                for info in archive:
                    if info.isfile():
                        yield info.name, (lambda i=info, a=archive: a.extractfile(i))
        elif source.is_file():
            yield source.name, (lambda: open(source, "rb"))
        else:
            raise UserError(f"--from {Path(os.path.abspath(source))}: no such file or folder")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as error:
        raise UserError(f"cannot read the archive {Path(os.path.abspath(source))} ({error}); it is truncated or "
                        "damaged, download it again") from None


def base_name(member: str) -> str:
    return PurePosixPath(member).name


def copy_member(opener: Callable[[], BinaryIO], destination: Path) -> Path:
    """Copy one member to ``destination`` (inside a staged folder), creating its folders."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        with opener() as source, open(destination, "wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError) as error:
        raise UserError(f"cannot unpack {destination.name} from the download ({error}); it is damaged, download "
                        "it again") from None
    except OSError as error:
        if error.filename is None:  # a write that failed: say which file (a full disk names it)
            error.filename = str(destination)
        raise
    return destination
