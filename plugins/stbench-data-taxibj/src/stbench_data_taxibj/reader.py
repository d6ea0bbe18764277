"""Reading TaxiBJ's dataset.npz into clips (numpy, torch)."""
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import torch

from stbench import Clips, UserError
from stbench_data_common import npz_member

from . import FILE, FOLDER, SHAPE, SPLIT_ARRAYS


def load_split(root, split):
    """(X, Y) arrays of one split, checked: [N, T, 2, 32, 32] each, same N."""
    path = Path(os.path.abspath(root)) / FOLDER / FILE
    if not path.exists():
        raise UserError(f"TaxiBJ: {path} not found; get dataset.npz with OpenSTL's "
                        "tools/prepare_data/download_taxibj.sh (github.com/chengtan9907/OpenSTL), then run "
                        "'stbench data check taxibj-4-4' (it prints the expected layout)")
    arrays = []
    for name in SPLIT_ARRAYS[split]:
        try:
            array = npz_member(path, name)
        except KeyError:
            raise UserError(f"TaxiBJ: {path} has no array '{name}'; expected X_train, Y_train, X_test, Y_test") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, struct.error) as error:
            raise UserError(f"TaxiBJ: cannot read '{name}' from {path} ({error}); the file looks damaged, "
                            "download it again") from None
        if array.ndim != 5 or tuple(array.shape[2:]) != SHAPE:
            raise UserError(f"TaxiBJ: {path}: '{name}' has shape {tuple(array.shape)}; expected (N, T, 2, 32, 32)")
        arrays.append(array)
    x, y = arrays
    if len(x) != len(y):
        raise UserError(f"TaxiBJ: {path}: {SPLIT_ARRAYS[split][0]} holds {len(x)} samples but "
                        f"{SPLIT_ARRAYS[split][1]} holds {len(y)}")
    return x, y


def window(observed, future, t_in, t_out):
    """Frames [start, start + t_in + t_out) of observed+future, cut at the observed/future boundary when it fits."""
    length = observed + future
    if t_in + t_out > length:
        raise UserError(f"TaxiBJ samples hold {length} frames ({observed} observed + {future} future); "
                        f"a task needs T_in + T_out <= {length}")
    return min(max(0, observed - t_in), length - t_in - t_out)


class TaxiBJClips(Clips):
    """(x, y) pairs from the X / Y arrays, mapped from [-1, 1] to [0, 1]."""

    def __init__(self, x, y, t_in, t_out, description=""):
        self.x, self.y, self.t_in, self.t_out = x, y, t_in, t_out
        self.start = window(x.shape[1], y.shape[1], t_in, t_out)
        self.description = description

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        clip = np.concatenate([np.asarray(self.x[index]), np.asarray(self.y[index])])
        clip = clip[self.start:self.start + self.t_in + self.t_out].astype(np.float32)
        clip = torch.from_numpy((clip + 1.0) / 2.0)
        return clip[: self.t_in], clip[self.t_in:]


def open_taxibj(root, split, t_in, t_out):
    if split == "val":
        split = "test"
    if split not in SPLIT_ARRAYS:
        raise UserError(f"taxibj has splits train and test, not '{split}'")
    x, y = load_split(root, split)
    return TaxiBJClips(x, y, t_in, t_out, description=f"{FOLDER}/{FILE} {split}: {len(x)} samples")


def check_taxibj(root):
    lines = []
    for split in ("train", "test"):
        x, y = load_split(root, split)
        sample = np.asarray(x[: min(len(x), 64)])
        lines.append(f"{split}: {len(x)} clips of {x.shape[1]}+{y.shape[1]} frames, frame shape {tuple(x.shape[2:])}, "
                     f"stored values {float(sample.min()):.3f}..{float(sample.max()):.3f} (first 64 clips; "
                     "expected within [-1, 1])")
    return "\n".join(lines)
