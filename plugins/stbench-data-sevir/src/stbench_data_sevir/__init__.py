"""stbench dataset plugin: SEVIR vertically integrated liquid (VIL) radar, streamed from HDF5."""
import os
from pathlib import Path

import numpy as np
import torch
from stbench import Clips, DatasetSpec, UserError, hookimpl

FOLDER = "sevir/processed"
FILES = {"train": "vil_training.h5", "test": "vil_testing.h5"}
SIZE = 384
OBSERVED, FUTURE = 13, 12
CSI_THRESHOLDS = (16, 74, 133, 160, 181, 219)

LAYOUT = f"""SEVIR VIL ({FOLDER}/ under the data root), the 13->12 frame split OpenSTL reads
(raw data: registry.opendata.aws/sevir; OpenSTL's openstl/datasets/dataloader_sevir.py):
  {FOLDER}/{FILES['train']}   HDF5 datasets IN (N, 384, 384, 13) and OUT (N, 384, 384, 12), uint8 VIL 0..255
  {FOLDER}/{FILES['test']}    same layout (USTEP: 35,718 training and 12,159 test sequences)
Frames are 5 minutes apart; IN holds the 13 observed frames, OUT the 12 to predict (time is the last axis).
Models see VIL / 255 (in [0, 1]); metrics get native VIL 0..255 (CSI thresholds {', '.join(map(str, CSI_THRESHOLDS))});
'val' is the test file, as in OpenSTL."""


HINT = ("get the SEVIR VIL data from registry.opendata.aws/sevir and make the IN / OUT files with OpenSTL's "
        "SEVIR preparation, then run 'stbench data check sevir-13-12' (it prints the expected layout)")


def _h5py():
    try:
        import h5py
    except ImportError:
        raise UserError("SEVIR needs the h5py package: pip install h5py") from None
    return h5py


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


SPEC = DatasetSpec(
    name="sevir",
    shape=(1, SIZE, SIZE),
    open=open_sevir,
    max_length=OBSERVED + FUTURE,
    layout=LAYOUT,
    canonical_tasks=("sevir-13-12",),
    value_range=(0.0, 255.0),
    mean=0.0,
    std=255.0,
    # csi comes from a metric plugin; the engine skips a default metric that is not installed.
    default_metrics=("mse", "mae", "rmse", "csi"),
    metric_options={"spatial_norm": True, "csi_thresholds": CSI_THRESHOLDS},
    check=check_sevir,
    description="SEVIR: radar vertically integrated liquid, 384x384, 5-minute frames",
)


@hookimpl
def stbench_register_datasets(register):
    register(SPEC)
