"""Clip indexing: where windows start in a video, and a Dataset that reads clips on demand."""
import os
from pathlib import Path
from typing import Callable, Hashable, List, Optional, Sequence, Tuple

import torch

from stbench import Clips, UserError

SPLITS = ("train", "test")


class NoClips(UserError):
    """The data is there but holds no clip of the requested length (videos too short)."""


def resolve_split(name: str, split: str) -> str:
    """``train`` or ``test``; ``val`` reads the test split (as the reference loaders evaluate on it)."""
    if split == "val":
        return "test"
    if split not in SPLITS:
        raise UserError(f"{name} has splits train and test, not '{split}'")
    return split


def check_length(spec, t_in: int, t_out: int) -> int:
    """T_in + T_out, or a UserError when the data holds no clips that long."""
    length = int(t_in) + int(t_out)
    if t_in < 1 or t_out < 1:
        raise UserError(f"{spec.name}: T_in and T_out must be at least 1 (got {t_in} and {t_out})")
    if length > spec.max_length:
        raise UserError(f"{spec.name} clips hold at most {spec.max_length} frames but the task needs {length}; "
                        f"choose T_in + T_out <= {spec.max_length}")
    return length


def end_aligned_starts(n_frames: int, length: int, stride: int,
                       fits: Optional[Callable[[int, int], bool]] = None) -> List[int]:
    """Window starts taken backwards from a video's last frame (OpenSTL's KTH / KITTI-Caltech recipe).

    A window ends at the last frame; the next one ends ``stride`` frames
    earlier. When ``fits(start, end)`` rejects a window (e.g. a gap in the
    frame numbering) the end moves back one frame at a time until one fits.
    Returned in ascending order.
    """
    starts, end = [], n_frames - 1
    while end >= length - 1:
        start = end - length + 1
        if fits is None or fits(start, end):
            starts.append(start)
            end -= max(1, stride)
        else:
            end -= 1
    return starts[::-1]


def sample_frames_start(frames: int, length: int, random: bool) -> int:
    """Where one clip of ``length`` frames starts in a video of ``frames``, as mmaction's ``SampleFrames`` (one clip,
    frame interval 1) that PredBench uses: uniform in ``0 .. frames - length`` when training (torch's seeded
    generator, drawn at each access), ``int((frames - length + 1) / 2)`` (the centre) otherwise."""
    choices = int(frames) - int(length) + 1
    if choices < 1:
        raise ValueError(f"a clip of {length} frames does not fit in {frames}")
    return int(torch.randint(choices, ())) if random else choices // 2


def runs(labels: Sequence[Hashable]) -> List[Tuple[Hashable, int, int]]:
    """Maximal runs of equal consecutive labels as ``(label, first index, count)``."""
    found, begin = [], 0
    for index in range(1, len(labels) + 1):
        if index == len(labels) or labels[index] != labels[begin]:
            found.append((labels[begin], begin, index - begin))
            begin = index
    return found


def read_clip_list(path: Path, what: str) -> List[Tuple[str, int]]:
    """Lines ``<prefix>,<start>[,...]`` (the OpenSTL / STRPM split files) as ``(prefix, start)``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"missing split file {path}; {what}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read split file {path} ({error}); replace it") from None
    clips = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        try:
            if len(fields) < 2 or not fields[0]:
                raise ValueError
            clips.append((fields[0], int(fields[1])))
        except ValueError:
            raise UserError(f"{path}:{number}: expected '<frame prefix>,<start index>', got {line.strip()!r}; "
                            "replace the split file") from None
    if not clips:
        raise UserError(f"split file {path} lists no clips; replace it")
    return clips


class VideoClips(Clips):
    """Clips read on demand: item ``i`` is ``read(video, start, length)`` split into ``(x, y)``.

    ``clips`` holds ``(video, start)`` pairs; ``read`` returns float32
    ``[length, C, H, W]`` in the dataset's native range, which ``spec``
    normalises. Subclasses may override :meth:`clip` (e.g. random offsets).
    """

    def __init__(self, clips, read, t_in: int, t_out: int, spec, description: str = ""):
        self.clips, self.read, self.t_in, self.t_out = clips, read, int(t_in), int(t_out)
        self.spec, self.description = spec, description

    def __len__(self):
        return len(self.clips)

    def clip(self, index):
        return self.clips[index]

    def __getitem__(self, index):
        video, start = self.clip(index)
        frames = self.read(video, start, self.t_in + self.t_out)
        expected = (self.t_in + self.t_out, *self.spec.shape)
        if tuple(frames.shape) != expected:
            raise UserError(f"{self.spec.name}: clip {index} has shape {tuple(frames.shape)}, expected {expected}")
        frames = self.spec.normalize(frames.to(torch.float32))
        return frames[: self.t_in], frames[self.t_in:]


def non_empty(dataset: VideoClips, name: str, split: str, where) -> VideoClips:
    """The dataset, or a UserError when it holds no clip of the requested length."""
    if len(dataset) == 0:
        raise NoClips(f"{name}: no {split} clips of {dataset.t_in + dataset.t_out} frames under "
                      f"{os.path.abspath(where)}; the videos there are too short or missing")
    return dataset
