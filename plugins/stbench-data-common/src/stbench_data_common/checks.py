"""Validating a data folder: required paths, and the per-split report of `stbench data check`."""
import os
from functools import partial
from pathlib import Path
from typing import Callable, Dict, Iterable, Sequence

from stbench import DatasetSpec, Task, UserError, parse_task


def fetch_hint(source: str, task: str, prepare: bool = False) -> str:
    """The tail of every missing-data line: where to get the data and which command shows the layout."""
    step = f", lay it out with 'stbench data prepare {task} --from DOWNLOAD'" if prepare else ""
    return f"get it from {source}{step}, then run 'stbench data check {task}' (it prints the expected layout)"


def require_dir(path: Path, what: str, hint: str) -> Path:
    """``path`` when it is a folder, else a one-line UserError (absolute path) saying what belongs there."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"missing folder {Path(os.path.abspath(path))} ({what}); {hint}")
    return path


def require_file(path: Path, what: str, hint: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"missing file {Path(os.path.abspath(path))} ({what}); {hint}")
    return path


def tasks_by_length(spec) -> Dict[int, Task]:
    """One canonical task per distinct clip length (clip counts depend on the length only)."""
    found: Dict[int, Task] = {}
    for text in spec.canonical_tasks:
        task = parse_task(text)
        found.setdefault(task.length, task)
    return dict(sorted(found.items()))


def longest_task_length(spec) -> int:
    return max(tasks_by_length(spec))


def frames_present(name: str, split: str, frames: Iterable[Sequence[Path]], fix: str) -> str:
    """A report line when every listed frame exists, else a UserError counting the missing ones.

    ``frames`` yields, per frame, the paths that may hold it (e.g. ``.png`` then ``.jpg``); each folder
    is listed once, so a whole split is checked without a stat per frame or any decoding.
    """
    listings: Dict[Path, set] = {}
    total, missing = 0, []
    for alternatives in frames:
        total += 1
        for path in alternatives:
            if path.parent not in listings:
                listings[path.parent] = set(os.listdir(path.parent)) if path.parent.is_dir() else set()
            if path.name in listings[path.parent]:
                break
        else:
            missing.append(alternatives[0])
    if missing:
        raise UserError(f"{name} {split}: {len(missing)} of the {total} frames named by {split}.txt are missing, "
                        f"e.g. {missing[0]}; {fix}")
    return f"{split}: all {total} frames named by {split}.txt exist"


def describe_split(spec, root, split: str, task: Task) -> str:
    """One report line: clip count, shapes and the native value range of the first and last clip."""
    length = task.length
    dataset = spec.open(root, split, task.t_in, task.t_out)
    values = []
    for index in sorted({0, len(dataset) - 1}):
        x, y = (spec.denormalize(part) for part in dataset[index])  # value_range is the native range
        values += [float(x.min()), float(x.max()), float(y.min()), float(y.max())]
        shape = tuple(x.shape[1:])
    low, high = min(values), max(values)
    if spec.value_range is not None and (low < spec.value_range[0] - 1e-6 or high > spec.value_range[1] + 1e-6):
        raise UserError(f"{spec.name} {split}: values {low:.3f}..{high:.3f} lie outside the expected range "
                        f"{spec.value_range[0]}..{spec.value_range[1]}; the files hold something else")
    detail = f" ({dataset.description})" if dataset.description else ""
    return (f"{split}: {len(dataset)} clips of {length} frames, frame shape {shape}, values {low:.3f}..{high:.3f} "
            f"(first and last clip){detail}")


def check_report(spec, root, extra: Iterable[Callable[[], str]] = ()) -> str:
    """Dataset-specific checks (cheap, file level) first, then every split at every canonical clip length."""
    from .clips import NoClips  # here: declaring a dataset with video_spec must not import torch

    lines = [f"{spec.name}: frames {tuple(spec.shape)}, canonical tasks {', '.join(spec.canonical_tasks)}"]
    lines += ["  " + check() for check in extra]
    empty: Dict[str, list] = {"train": [], "test": []}
    tasks = tasks_by_length(spec).values()
    for task in tasks:
        for split in ("train", "test"):
            try:
                lines.append("  " + describe_split(spec, root, split, task))
            except NoClips as error:  # too short for this task only; the other tasks may still run
                empty[split].append(error)
                lines.append(f"  {split}: {error}")
    for errors in empty.values():
        if len(errors) == len(tasks):  # a split with no clip for any canonical task is unusable
            raise errors[0]
    return "\n".join(lines)


def video_spec(*, extra_checks: Sequence[Callable[[str], str]] = (), **fields) -> DatasetSpec:
    """A DatasetSpec for 8-bit video frames scaled to [0, 1].

    Value range (0, 1) and the pixel metrics unless ``fields`` say otherwise;
    ``check`` is :func:`check_report` after the dataset's file-level ``extra_checks(root)``.
    """
    fields.setdefault("value_range", (0.0, 1.0))
    fields.setdefault("default_metrics", ("mse", "mae", "ssim", "psnr"))
    spec = DatasetSpec(**fields)
    spec.check = partial(_check_with, spec, tuple(extra_checks))
    return spec


def _check_with(spec, extra_checks, root) -> str:
    return check_report(spec, root, [partial(check, root) for check in extra_checks])
