"""The Moving MNIST variants' clips: Fashion-MNIST objects, perturbed speeds, cluttered backgrounds (numpy, torch)."""
import os
from pathlib import Path

import numpy as np
import torch

from stbench import Clips, UserError
from stbench_data_mmnist import IMAGE_SIZE, TEST_LENGTH
from stbench_data_mmnist import MovingDigitsTrain, fixed_test_clips, load_digits, published_test, validation_clips
from stbench_data_mmnist import VAL_CLIPS, VAL_SEED
from stbench_data_mmnist.moving import DIGIT_SIZE, STEP, read_idx_images

from . import (CLUTTERED_TEST, DYNAMIC_SIGMA, FMNIST_FOLDER, FMNIST_LAYOUT, FMNIST_SYSTEM, FMNIST_TEST, TEST_CLIPS,
               TEST_SEED, TRAIN_CLIPS)
from .backgrounds import load_backgrounds


def packaged_fmnist(split):
    """Fashion-MNIST images of the Debian package dataset-fashion-mnist, or None."""
    path = FMNIST_SYSTEM / f"{'train' if split == 'train' else 't10k'}-images-idx3-ubyte.gz"
    if not path.exists():
        return None
    try:
        return read_idx_images(path)
    except (OSError, ValueError, EOFError) as error:
        raise UserError(f"cannot read Fashion-MNIST images from {path}: {error}; reinstall dataset-fashion-mnist") from None


def load_fashion(root, split):
    return load_digits(root, split, folder=FMNIST_FOLDER, packaged=packaged_fmnist, what="Fashion-MNIST",
                       layout=FMNIST_LAYOUT)


def open_mfmnist(root, split, t_in, t_out):
    if split == "train":
        digits, source = load_fashion(root, "train")
        return MovingDigitsTrain(digits, t_in, t_out, description=f"generated on the fly from {source}")
    if split == "val":
        return validation_clips(*load_fashion(root, "train"), t_in, t_out)
    if split == "test":
        return fixed_test_clips(root, t_in, t_out, folder=FMNIST_FOLDER, test_file=FMNIST_TEST,
                                digits_loader=lambda: load_fashion(root, "test"))
    raise UserError(f"mfmnist has splits train, val and test, not '{split}'")


def check_mfmnist(root):
    digits, source = load_fashion(root, "train")
    lines = [f"train objects: {len(digits)} from {source}"]
    array = published_test(root, folder=FMNIST_FOLDER, test_file=FMNIST_TEST)
    if array is not None:
        first = np.asarray(array[:, 0])
        lines.append(f"test: {FMNIST_TEST}, shape {tuple(array.shape)}, values {int(first.min())}..{int(first.max())} "
                     "in its first clip")
    else:
        test, source = load_fashion(root, "test")
        lines.append(f"test: {FMNIST_TEST} absent; a fixed-seed test set of {TEST_CLIPS} clips is rendered on demand "
                     f"from {len(test)} {source} (nothing is written)")
    return "\n".join(lines)


# ---------------------------------------------------------------- generated variants


def bouncing(rng, length, noisy_frames=0, sigma=0.0):
    """Top-left corners (rows, cols) of one object over ``length`` frames.

    The Moving MNIST walk (start and direction uniform, step 0.1 of the free canvas, bounce). With
    ``sigma`` > 0 the velocity of the first ``noisy_frames`` steps gets N(0, sigma) noise per component
    (OpenSTL's noisy Moving MNIST, 'dynamic': sigma 0.2 on the observed frames only).
    """
    y, x = rng.random(), rng.random()
    theta = rng.random() * 2 * np.pi
    vy, vx = np.full(length, np.sin(theta)), np.full(length, np.cos(theta))
    if sigma and noisy_frames:
        k = min(noisy_frames, length)
        vy[:k] += rng.normal(0.0, sigma, k)
        vx[:k] += rng.normal(0.0, sigma, k)
    rows, cols = np.zeros(length), np.zeros(length)
    sign_y = sign_x = 1.0
    for i in range(length):
        y += sign_y * vy[i] * STEP
        x += sign_x * vx[i] * STEP
        if x <= 0 or x >= 1.0:
            x, sign_x = min(max(x, 0.0), 1.0), -sign_x
        if y <= 0 or y >= 1.0:
            y, sign_y = min(max(y, 0.0), 1.0), -sign_y
        rows[i], cols[i] = y, x
    canvas = IMAGE_SIZE - DIGIT_SIZE
    return (canvas * rows).astype(np.int32), (canvas * cols).astype(np.int32)


def composite(frames, digit, rows, cols):
    """Max-composite one object into every frame ([T, H, W] or [T, H, W, 3]) at its corners."""
    patch = digit if frames.ndim == 3 else digit[:, :, None]
    for i, (r, c) in enumerate(zip(rows, cols)):
        window = frames[i, r:r + DIGIT_SIZE, c:c + DIGIT_SIZE]
        np.maximum(window, patch, out=window)
    return frames


class GeneratedClips(Clips):
    """Clips rendered from (seed, epoch, index): training clips change per epoch, the test set is fixed.

    ``render(rng, length, t_in) -> uint8 [T, H, W]`` or ``[T, H, W, 3]``. The fixed-seed test set is
    rendered on demand instead of cached: clip i is always the same, and nothing has to be written.
    """

    def __init__(self, render, clips, t_in, t_out, seed=None, description=""):
        self.render, self.clips, self.t_in, self.t_out = render, clips, t_in, t_out
        self.fixed = seed is not None
        self.seed = int(seed) if self.fixed else torch.initial_seed() % (2 ** 63)
        self.epoch = 0
        self.description = description

    def set_epoch(self, epoch):
        if not self.fixed:
            self.epoch = int(epoch)

    def __len__(self):
        return self.clips

    def __getitem__(self, index):
        if not 0 <= index < self.clips:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        frames = self.render(rng, self.t_in + self.t_out, self.t_in)
        clip = torch.from_numpy(frames).float().div_(255.0)
        clip = clip.unsqueeze(1) if clip.ndim == 3 else clip.permute(0, 3, 1, 2)
        return clip[: self.t_in].contiguous(), clip[self.t_in:].contiguous()


def _split_name(dataset, split):
    """The digits (and backgrounds) a split draws from: validation clips use the training ones."""
    if split not in ("train", "test", "val"):
        raise UserError(f"{dataset} has splits train, val and test, not '{split}'")
    return "test" if split == "test" else "train"


def _fixed(render, split, t_in, t_out, described):
    """The fixed-seed validation or test clips (validation: a seed stream of its own, training digits)."""
    if split == "val":
        return GeneratedClips(render, VAL_CLIPS, t_in, t_out, seed=VAL_SEED,
                              description=f"fixed-seed validation set (seed {VAL_SEED}): {described}")
    return GeneratedClips(render, TEST_CLIPS, t_in, t_out, seed=TEST_SEED,
                          description=f"fixed-seed test set (seed {TEST_SEED}): {described}")


def open_dynamic(root, split, t_in, t_out):
    digits, source = load_digits(root, _split_name("mmnist-dynamic", split))

    def render(rng, length, observed):
        frames = np.zeros((length, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
        for _ in range(2):
            rows, cols = bouncing(rng, length, observed, DYNAMIC_SIGMA)
            composite(frames, digits[rng.integers(0, len(digits))], rows, cols)
        return frames

    if split == "train":
        return GeneratedClips(render, TRAIN_CLIPS, t_in, t_out, description=f"generated on the fly from {source}")
    return _fixed(render, split, t_in, t_out, f"from {source}")


def check_dynamic(root):
    return "\n".join(f"{split} digits: {len(digits)} from {source}"
                     for split in ("train", "test") for digits, source in [load_digits(root, split)])


class FrameMajorColorClips(Clips):
    """Clips from a (T, N, H, W, 3) uint8 array, the layout of OpenSTL's mnist_cifar_test_seq.npy."""

    def __init__(self, array, t_in, t_out, description=""):
        self.array, self.t_in, self.t_out, self.description = array, t_in, t_out, description

    def __len__(self):
        return self.array.shape[1]

    def __getitem__(self, index):
        clip = np.asarray(self.array[: self.t_in + self.t_out, index], dtype=np.float32) / 255.0
        clip = torch.from_numpy(clip).permute(0, 3, 1, 2)
        return clip[: self.t_in].contiguous(), clip[self.t_in:].contiguous()


def published_cluttered_test(root):
    path = Path(os.path.abspath(root)) / "moving_mnist" / CLUTTERED_TEST
    if not path.exists():
        return None
    from stbench import checked_npy

    try:
        array = checked_npy(path)  # the header checked against the file's size before mapping it
    except UserError as error:
        raise UserError(f"cannot read {path}: {error}; replace it or remove it to use the generated test set") from None
    if array.ndim != 5 or array.shape[2:] != (IMAGE_SIZE, IMAGE_SIZE, 3) or array.shape[0] < TEST_LENGTH:
        raise UserError(f"{path} has shape {array.shape}; expected ({TEST_LENGTH}, N, 64, 64, 3) uint8")
    return array


def open_cluttered(root, split, t_in, t_out):
    drawn_from = _split_name("mmnist-cluttered", split)
    if split == "test":
        array = published_cluttered_test(root)
        if array is not None:
            return FrameMajorColorClips(array, t_in, t_out, description=f"{CLUTTERED_TEST} ({array.shape[1]} clips)")
    digits, source = load_digits(root, drawn_from)
    backgrounds, background_source = load_backgrounds(root, drawn_from)
    binary = np.where(digits > 1, 255, 0).astype(np.uint8)  # OpenSTL: digit pixels > 1 become 255

    def render(rng, length, observed):
        background = backgrounds[rng.integers(0, len(backgrounds))]
        frames = np.repeat(background[None], length, axis=0)
        for _ in range(2):
            rows, cols = bouncing(rng, length)
            composite(frames, binary[rng.integers(0, len(binary))], rows, cols)
        return frames

    described = f"{source} on {background_source}"
    if split == "train":
        return GeneratedClips(render, TRAIN_CLIPS, t_in, t_out, description=f"generated on the fly: {described}")
    return _fixed(render, split, t_in, t_out, described)


def check_cluttered(root):
    lines = []
    for split in ("train", "test"):
        digits, source = load_digits(root, split)
        backgrounds, background_source = load_backgrounds(root, split)
        lines.append(f"{split}: {len(digits)} digits from {source}; {len(backgrounds)} backgrounds "
                     f"{tuple(backgrounds.shape[1:])} from {background_source}")
    array = published_cluttered_test(root)
    if array is not None:
        lines.append(f"test: {CLUTTERED_TEST} {tuple(array.shape)} is used instead of the generated test set")
    return "\n".join(lines)
