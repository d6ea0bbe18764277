"""Moving MNIST's clips: generated training clips and the fixed test set (numpy, torch)."""
import os
from pathlib import Path

import numpy as np
import torch

from stbench import Clips, UserError

from . import (FOLDER, IMAGE_SIZE, LAYOUT, TEST_CLIPS, TEST_FILE, TEST_LENGTH, TEST_SEED, TRAIN_CLIPS_PER_EPOCH,
               VAL_CLIPS, VAL_SEED)
from .moving import clip_plans, draw, packaged_mnist, read_idx_images, render_clip


class MovingDigitsTrain(Clips):
    """Freshly generated clips each epoch, reproducible from (run seed, epoch, index)."""

    def __init__(self, digits, t_in, t_out, clips=TRAIN_CLIPS_PER_EPOCH, num_digits=2, speed_jitter=0.0,
                 description=""):
        self.digits, self.t_in, self.t_out = digits, t_in, t_out
        self.clips, self.num_digits, self.speed_jitter = clips, num_digits, speed_jitter
        self.seed = torch.initial_seed() % (2 ** 63)
        self.epoch = 0
        self.description = description

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def __len__(self):
        return self.clips

    def __getitem__(self, index):
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        clip = render_clip(rng, self.digits, self.t_in + self.t_out, self.num_digits, self.speed_jitter)
        clip = torch.from_numpy(clip).float().div_(255.0).unsqueeze(1)
        return clip[: self.t_in], clip[self.t_in:]


class FrameMajorClips(Clips):
    """Clips from a (T, N, H, W) uint8 array, the layout of mnist_test_seq.npy."""

    def __init__(self, array, t_in, t_out, description=""):
        self.array, self.t_in, self.t_out = array, t_in, t_out
        self.description = description

    def __len__(self):
        return self.array.shape[1]

    def __getitem__(self, index):
        clip = np.asarray(self.array[: self.t_in + self.t_out, index], dtype=np.float32) / 255.0
        clip = torch.from_numpy(clip).unsqueeze(1)
        return clip[: self.t_in], clip[self.t_in:]


def load_digits(root, split, folder=FOLDER, idx_names=None, packaged=packaged_mnist, what="MNIST", layout=LAYOUT):
    """Digits from the data root when present, else from the installed package."""
    names = idx_names or {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
    for suffix in (".gz", ""):
        path = Path(root) / folder / (names[split] + suffix)
        if path.exists():
            try:
                return read_idx_images(path), str(path)
            except (OSError, ValueError, EOFError) as error:
                raise UserError(f"cannot read {what} digits from {path}: {error}; replace the file "
                                "or remove it to use the packaged digits") from None
    digits = packaged(split)
    if digits is None:
        task = "mfmnist-10-10" if "Fashion" in what else "mmnist-10-10"
        raise UserError(f"no {what} digits found under {Path(os.path.abspath(root)) / folder} and no packaged copy "
                        f"is installed; put {names[split]}.gz there, then run 'stbench data check {task}' (it prints "
                        "the expected layout)")
    return digits, f"packaged {what} {split} digits"


class GeneratedTestClips(Clips):
    """A fixed-seed test set rendered clip by clip: the same clips as rendering all at once, nothing stored.

    The random draws of all clips are made up front (a few MB); clip ``i`` is drawn from them on demand.
    """

    def __init__(self, digits, plans, t_in, t_out, description=""):
        self.digits, self.plans, self.t_in, self.t_out = digits, plans, t_in, t_out
        self.description = description

    def __len__(self):
        return len(self.plans[0][2])

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(index)
        clip = draw(self.digits, self.plans, index, self.t_in + self.t_out)
        clip = torch.from_numpy(clip).float().div_(255.0).unsqueeze(1)
        return clip[: self.t_in], clip[self.t_in:]


def published_test(root, folder=FOLDER, test_file=TEST_FILE):
    """The published test array (memory-mapped) when the data root holds it, else None."""
    path = Path(os.path.abspath(root)) / folder / test_file
    if not path.exists():
        return None
    from stbench import checked_npy

    try:
        array = checked_npy(path)  # the header checked against the file's size before mapping it
    except UserError as error:
        raise UserError(f"cannot read {path}: {error}; re-download it or remove it") from None
    if array.ndim != 4 or array.shape[2:] != (IMAGE_SIZE, IMAGE_SIZE) or array.shape[0] < TEST_LENGTH:
        raise UserError(f"{path} has shape {array.shape}; expected ({TEST_LENGTH}, N, 64, 64) uint8")
    return array


def fixed_test_clips(root, t_in, t_out, folder=FOLDER, test_file=TEST_FILE, digits_loader=None, seed=TEST_SEED):
    """The published test set when present, else the fixed-seed generated one (rendered on demand, never written)."""
    array = published_test(root, folder, test_file)
    if array is not None:
        return FrameMajorClips(array, t_in, t_out, description=f"{test_file} ({array.shape[1]} clips)")
    digits, _ = (digits_loader or (lambda: load_digits(root, "test")))()
    plans = clip_plans(np.random.default_rng(seed), TEST_CLIPS, TEST_LENGTH, len(digits))
    return GeneratedTestClips(digits, plans, t_in, t_out,
                              description=f"generated fixed-seed test set (seed {seed}, {test_file} absent)")


def validation_clips(digits, source, t_in, t_out, seed=VAL_SEED, clips=VAL_CLIPS):
    """The validation set: ``clips`` clips of the training digits from a fixed seed stream of their own, rendered
    on demand (the training stream is (run seed, epoch, index); the test set uses the test digits)."""
    plans = clip_plans(np.random.default_rng(seed), clips, t_in + t_out, len(digits))
    return GeneratedTestClips(digits, plans, t_in, t_out,
                              description=f"fixed-seed validation set (seed {seed}, {clips} clips) from {source}")


def open_mmnist(root, split, t_in, t_out):
    if split in ("train", "val"):
        digits, source = load_digits(root, "train")
        if split == "val":
            return validation_clips(digits, source, t_in, t_out)
        return MovingDigitsTrain(digits, t_in, t_out, description=f"generated on the fly from {source}")
    if split == "test":
        return fixed_test_clips(root, t_in, t_out)
    raise UserError(f"mmnist has splits train, val and test, not '{split}'")


def check_mmnist(root):
    lines = []
    digits, source = load_digits(root, "train")
    lines.append(f"train digits: {len(digits)} from {source}")
    array = published_test(root)
    if array is not None:
        first = np.asarray(array[:, 0])
        lines.append(f"test: {TEST_FILE}, shape {tuple(array.shape)}, values {int(first.min())}..{int(first.max())} "
                     "in its first clip")
    else:
        lines.append(f"test: {Path(os.path.abspath(root)) / FOLDER / TEST_FILE} absent; a fixed-seed test set of "
                     f"{TEST_CLIPS} clips is rendered on demand (nothing is written)")
    return "\n".join(lines)
