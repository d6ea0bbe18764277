"""The dataset contract: DatasetSpec, normalisation and clip helpers."""
from abc import ABCMeta, abstractmethod
from pathlib import Path
from dataclasses import replace
from typing import Any, Dict, Optional

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

# declared torch-free in specs (the CLI and plugin entry modules use them), re-exported here
from .specs import DATA_ROOT_VARIABLE, DatasetSpec, Number, default_data_root  # noqa: F401


def base_dataset(dataset) -> "Clips":
    """The :class:`Clips` a (possibly nested) ``Subset`` or :class:`EveryKth` of an opened split draws from."""
    while isinstance(dataset, (Subset, EveryKth)):
        dataset = dataset.dataset if isinstance(dataset, Subset) else dataset.stretched
    return dataset


def statistics_of(spec: DatasetSpec, dataset) -> DatasetSpec:
    """``spec`` with the ``mean`` / ``std`` an opened :class:`Clips` carries (also through a ``Subset``), or ``spec``."""
    dataset = base_dataset(dataset)
    if dataset.mean is None or dataset.std is None:
        return spec
    return replace(spec, mean=dataset.mean, std=dataset.std)


def describe(dataset) -> Dict[str, Any]:
    """How many clips a (limited) split holds and where they came from, for the run record."""
    return {"clips": len(dataset), "source": base_dataset(dataset).description}


def open_split(spec: DatasetSpec, root, split: str, task) -> "Clips":
    """Open one split as :class:`Clips`, turning the plugin's I/O failures into one line that says where to look.

    ``DatasetSpec.open`` returns :class:`Clips`; a plain torch ``Dataset`` of ``(x, y)`` pairs (what the contract
    once said) is wrapped here, once, so everything after this sees :class:`Clips`; anything else is refused.
    """
    from .errors import UserError

    try:
        opened = spec.open(str(root), split, task.t_in, task.t_out)
    except UserError:
        raise
    except (OSError, ValueError, KeyError, EOFError) as error:
        raise UserError(f"cannot read {spec.name} data under {Path(root).resolve()}: {error}; "
                        f"see 'stbench data check {task.name}'") from None
    if isinstance(opened, Clips):
        return opened
    if isinstance(opened, Dataset):
        return DatasetClips(opened)
    raise UserError(f"dataset '{spec.name}' (plugin '{spec.plugin or '?'}'): open() returned a "
                    f"{type(opened).__name__}, not stbench.Clips; the plugin must return Clips (update or "
                    "uninstall it)")


def limit(dataset, count: Optional[int]):
    """At most ``count`` items, evenly spread over the dataset (deterministic, not the first N)."""
    if count is None or count >= len(dataset):
        return dataset
    indices = np.linspace(0, len(dataset) - 1, int(count)).round().astype(int)
    return Subset(dataset, sorted(set(indices.tolist())))


def open_splits(spec: DatasetSpec, root, task, train_samples: Optional[int], test_samples: Optional[int]):
    """(train, test) of a task, limited to the given clip counts; a test split without clips is an error."""
    train_set, _, test_set = open_all_splits(spec, root, task, train_samples, test_samples, validate=False)
    return train_set, test_set


def validation_source(spec: DatasetSpec) -> str:
    """Where a dataset's validation clips come from, in words (run records, ``data check``)."""
    if spec.validation == "val":
        return "the dataset's validation split"
    if isinstance(spec.validation, float):
        return (f"{spec.validation:.0%} of the training clips (the tail of each of {VALIDATION_BLOCKS} runs in "
                "the reader's order), held out from training")
    return "none declared by the dataset plugin"


VALIDATION_BLOCKS = 10


def held_out(dataset, fraction: float, blocks: int = VALIDATION_BLOCKS):
    """(training part, validation part): the clips in the order the plugin opened them (by sequence, and by
    class or person where it sorts so) cut into ``blocks`` equal runs, and the last ``fraction`` of each run
    held out. The validation clips are spread over the whole set (every action of KTH, not only the last one)
    yet contiguous, so they share frames with training clips at ``blocks`` boundaries at most."""
    count = len(dataset)
    total = min(count - 1, max(1, int(round(count * fraction)))) if count > 1 else 0
    blocks = max(1, min(int(blocks), total or 1))
    edges = [round(count * b / blocks) for b in range(blocks + 1)]
    shares = [round(total * b / blocks) for b in range(blocks + 1)]
    train_indices, val_indices = [], []
    for (start, end), held in zip(zip(edges, edges[1:]), (b - a for a, b in zip(shares, shares[1:]))):
        train_indices += range(start, end - held)
        val_indices += range(end - held, end)
    return Subset(dataset, train_indices), Subset(dataset, val_indices)


class EveryKth(Dataset):
    """Clips of a task seen at ``interval`` times its frame spacing: item i of ``stretched`` (opened for
    ``interval`` times the task's frames) with every ``interval``-th frame kept, split at ``t_in``."""

    def __init__(self, stretched, interval: int, t_in: int):
        self.stretched, self.interval, self.t_in = stretched, int(interval), int(t_in)

    def __len__(self):
        return len(self.stretched)

    def __getitem__(self, index):
        x, y = self.stretched[index]
        frames = torch.cat([x, y])[:: self.interval]
        return frames[: self.t_in], frames[self.t_in:]


def open_test_at_interval(spec: DatasetSpec, root, task, interval: int):
    """The test clips of ``task`` with ``interval`` frames between the ones a model sees (temporal-resolution
    robustness: a model trained at one frame rate scored at a lower one)."""
    from .errors import UserError
    from .tasks import Task

    needed = task.length * interval
    if needed > spec.max_length:
        raise UserError(f"--frame-interval {interval}: {task.name} then spans {needed} frames, but {spec.name}'s "
                        f"clips hold at most {spec.max_length}; choose a smaller interval or a shorter task")
    stretched = Task(task.dataset, task.t_in * interval, task.t_out * interval).with_shape(task.shape)
    return EveryKth(open_split(spec, root, "test", stretched), interval, task.t_in)


def open_all_splits(spec: DatasetSpec, root, task, train_samples: Optional[int], test_samples: Optional[int],
                    validate: bool = False, val_samples: Optional[int] = None, val_on_test: bool = False,
                    frame_interval: int = 1):
    """(train, validation, test) of a task, each limited to its clip count.

    With ``validate`` the validation clips come from where the dataset declares (:func:`validation_source`),
    never from the test split, unless ``val_on_test`` (OpenSTL's procedure, selecting on test data). A
    fraction held out of the training clips is taken before ``train_samples`` limits the rest. Without a
    declaration, or without ``validate``, validation is ``None``.
    """
    from .errors import UserError

    train_set, val_set = open_split(spec, root, "train", task), None
    test_set = open_split(spec, root, "test", task) if frame_interval == 1 else open_test_at_interval(
        spec, root, task, frame_interval)
    test_set = limit(test_set, test_samples)
    if validate and val_on_test:
        val_set = test_set
    elif validate and spec.validation == "val":
        val_set = limit(open_split(spec, root, "val", task), val_samples)
    elif validate and isinstance(spec.validation, float):
        train_set, val_set = held_out(train_set, spec.validation)
        val_set = limit(val_set, val_samples)
    train_set = limit(train_set, train_samples)
    if len(test_set) == 0:
        raise UserError(f"{spec.name} under {Path(root).resolve()} holds no test clip of {task.length} frames; "
                        f"check the data (stbench data check {task.name})")
    if val_set is not None and len(val_set) == 0:
        raise UserError(f"{spec.name} under {Path(root).resolve()} holds no validation clip of {task.length} frames "
                        f"({validation_source(spec)}); check the data (stbench data check {task.name})")
    return train_set, val_set, test_set


class Clips(Dataset, metaclass=ABCMeta):
    """The base of every dataset's clips: item ``i`` is ``(x, y)``, ``x: [t_in, C, H, W]``,
    ``y: [t_out, C, H, W]``, float32, normalised. ``__len__`` and ``__getitem__`` are abstract: clips
    missing one cannot be constructed.

    Documented attributes, all with defaults here:

    - ``description``: where the clips came from, in words (copied into the run record).
    - ``mean`` / ``std``: ``None`` when the spec's constants apply; set them when the statistics
      come from the data opened (then :func:`statistics_of` de-normalises with them).
    - :meth:`set_epoch`: called by the trainer before each training epoch; clips generated on the
      fly (Moving MNIST) reseed from it so a resumed run sees the same data. Default: nothing.
    """

    description: str = ""
    mean: Optional[Number] = None
    std: Optional[Number] = None

    def set_epoch(self, epoch: int) -> None:
        """Called before training epoch ``epoch`` (0-based); the default does nothing."""

    @abstractmethod
    def __len__(self) -> int:
        """How many clips."""

    @abstractmethod
    def __getitem__(self, index):
        """Clip ``index`` as ``(x, y)``."""


class ArrayClips(Clips):
    """Clips from an array ``[N, T, C, H, W]`` (memmap friendly), split into (x, y).

    ``scale`` converts the stored values to the native range (e.g. 1/255 for
    uint8 frames stored for [0, 1] data); ``spec`` normalises them.
    """

    def __init__(self, array, t_in: int, t_out: int, spec: DatasetSpec, scale: float = 1.0,
                 offset: int = 0, description: str = ""):
        self.array, self.t_in, self.t_out = array, t_in, t_out
        self.spec, self.scale, self.offset = spec, scale, offset
        self.description = description

    def __len__(self):
        return len(self.array)

    def __getitem__(self, index):
        clip = np.asarray(self.array[index][self.offset:self.offset + self.t_in + self.t_out], dtype=np.float32)
        clip = torch.from_numpy(clip * self.scale if self.scale != 1.0 else clip)
        clip = self.spec.normalize(clip)
        return clip[: self.t_in], clip[self.t_in:]


class DatasetClips(Clips):
    """A plain torch ``Dataset`` of ``(x, y)`` pairs that a plugin's ``open`` returned, as :class:`Clips` with the
    defaults (the spec's statistics, no per-epoch state)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        return self.dataset[index]
