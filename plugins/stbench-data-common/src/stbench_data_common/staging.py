"""`stbench data prepare` helpers: reading a download (zip, tar, folder) and building a layout atomically.

A layout is built in a hidden temporary folder beside its final place and renamed into place only
when complete, so a failed or interrupted preparation never leaves a half-written layout behind.
Files are written under names stbench computes itself, never under names taken from an archive.
"""
import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable, Iterator, Optional, Tuple

from stbench import UserError

Member = Tuple[str, Callable[[], BinaryIO]]  # (path inside the download, open it for reading)


@contextmanager
def staged_folder(target):
    """Yield an empty temporary folder; on success it becomes ``target`` (which must not exist yet)."""
    target = Path(os.path.abspath(target))
    if target.exists():
        raise UserError(f"{target} already exists; remove it (or prepare into another --data-root) and run "
                        "'stbench data prepare' again")
    created = [parent for parent in target.parents if not parent.exists()]  # removed again on failure
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.preparing-", dir=target.parent))
    except OSError as error:
        raise UserError(f"cannot create {target} ({error.strerror}); choose a writable --data-root") from None
    try:
        yield staging
        os.replace(staging, target)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        for parent in created:  # innermost first
            try:
                parent.rmdir()
            except OSError:
                break
        if isinstance(error, OSError):
            raise UserError(f"cannot write {target} ({error.strerror or error}); nothing was left behind, free "
                            "some space or choose another --data-root") from None
        raise


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
    return destination
